"""Every torch and keras rule fixture's source patch (`--fix-diff --unsafe-fixes` on its bad model), as a reviewed
snapshot in tests/snapshots/fixes/<framework>/<stem>.diff, and what writing it does: nothing reverted, a file that
parses, idempotent, the fixture's rule gone without a new error, and a model that trains one step. A fixture without
a patch snapshots why: each finding's fixes with their applicability and reason. ONNX graphs are never patched.
Regenerate the snapshots with SHAPECHECK_UPDATE_SNAPSHOTS=1."""

from __future__ import annotations

import ast
import difflib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rule_fixtures import ROOT, fixture_id, fixture_paths, load_module, rule_code, run_fixture
from shapecheck import pipeline, targets
from shapecheck.cli import main
from shapecheck.request import Flags

pytestmark = [pytest.mark.slow,         # every fixture is checked, patched, re-checked and trained
              pytest.mark.subprocess]   # each test commits with git; --fix asks git too

SNAPSHOTS = ROOT / "tests" / "snapshots" / "fixes"
UPDATE = os.environ.get("SHAPECHECK_UPDATE_SNAPSHOTS") == "1"
FIXTURES = [path for path in fixture_paths() if path.parent.parent.name != "onnx"]
TRAINING_CODE_NOTE = "also change your training code"   # the patched recipe has a label or loss step too


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    """The audit trains tiny models for up to 300 steps; on a busy machine torch's thread pool spins and makes that
    ten times slower (sc151: 64 s instead of 4.5 s). One thread keeps each fixture to seconds."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def git(*args):
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], check=True)


def _forget_imports():
    """The next check imports the file as it is now, not the module an earlier check loaded."""
    for name in [n for n in sys.modules if n.startswith("_shapecheck_target_")]:
        del sys.modules[name]


def _imported_siblings(path: Path) -> list[Path]:
    """The helper modules of the fixture's folder that it imports (onnx/rules/graphs.py is one such)."""
    tree = ast.parse(path.read_text())
    names = {alias.name.partition(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    names |= {node.module.partition(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.ImportFrom) and node.module and not node.level}
    return [sibling for sibling in path.parent.glob("*.py") if sibling.stem in names and sibling != path]


def _project(path: Path, folder: Path, monkeypatch) -> Flags:
    """A git project holding a committed copy of the fixture (and its labels, written as run_fixture writes them),
    as the current folder; returns the flags run_fixture checks the bad model with."""
    for source in (path, *_imported_siblings(path)):
        shutil.copy(source, folder / source.name)
    module = load_module(path)
    inputs = [module.INPUT] if isinstance(module.INPUT, str) else list(module.INPUT)
    flags = Flags(inputs=inputs, loss=module.LOSS, labels=getattr(module, "LABELS", None))
    if hasattr(module, "make_labels"):
        np.save(folder / "bad_labels.npy", np.asarray(module.make_labels()))
        flags = Flags(inputs=inputs, loss=module.LOSS, labels_file="bad_labels.npy")
    monkeypatch.chdir(folder)
    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "fixture")
    _forget_imports()
    return flags


def _arguments(flags: Flags, target: str) -> list[str]:
    """`shapecheck check` arguments for the same check as `flags`."""
    arguments = [target, *(a for spec in flags.inputs for a in ("--input", spec))]
    for option, value in (("--loss", flags.loss), ("--labels", flags.labels), ("--labels-file", flags.labels_file)):
        arguments += [option, value] if value else []
    return arguments


def _findings(arguments: list[str], *options: str) -> list[dict]:
    checked = run("check", *arguments, "--format", "json", *options)
    assert checked.exit_code in (0, 1), checked.stderr
    return json.loads(checked.stdout)["results"][0]["findings"]


def _error_rules(findings: list[dict]) -> set[str]:
    return {finding["rule"] for finding in findings if finding["severity"] == "error"}


def _why_unpatched(findings: list[dict]) -> str:
    """What the snapshot holds when nothing is patched: each finding's fixes, and why none is written. Warnings
    too (a warning's verified fix is patched as well), tagged, so that a warning-only fixture is not empty."""
    lines = ["# no patch: the findings and why none of their fixes is written"]
    for finding in findings:
        fixes = [f"{fix['applicability']}{'' if fix['verified'] else ' (unverified)'}: {fix['reason'] or '-'}"
                 for fix in finding["fixes"]]
        severity = "" if finding["severity"] == "error" else f" ({finding['severity']})"
        lines.append(f"{finding['rule']}{severity}: {'; '.join(fixes) or 'no fix'}")
    return "\n".join(lines) + "\n"


def _matches_snapshot(path: Path, text: str):
    snapshot = SNAPSHOTS / path.parent.parent.name / f"{path.stem}.diff"
    if UPDATE or not snapshot.exists():
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        snapshot.write_text(text)
        if not UPDATE:
            pytest.fail(f"new snapshot written to {snapshot.relative_to(ROOT)}; review it and re-run")
    assert text == snapshot.read_text()


def _train_one_step(flags: Flags, target: str) -> str:
    """One training step of the patched model with the fixture's inputs, labels and loss (the check's, which sizes
    them), as benchmarks/fix_evidence.py `_train` takes it."""
    checked = pipeline.run(Flags(inputs=flags.inputs, loss=flags.loss, labels=flags.labels,
                                 labels_file=flags.labels_file, verify_fixes=False, audit=False).request(target))
    assert checked.error is None, checked.error
    loaded = targets.load(target)
    model = loaded.adapter.edited(loaded.model, (), checked.labels)
    return loaded.adapter.train_step(model, checked.trace.inputs, loaded.example, checked.labels, checked.loss)


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_fix_patch_of_the_bad_fixture(path, tmp_path, monkeypatch):
    flags = _project(path, tmp_path, monkeypatch)
    target = f"{path.name}:bad"
    arguments = _arguments(flags, target)
    shown = run("check", *arguments, "--fix-diff", "--unsafe-fixes")
    assert shown.exit_code in (0, 1), shown.stderr
    # saying why nothing is patched takes verified fixes; the lists of rules below do not (--no-verify-fixes halves
    # those checks and changes no finding; the audit, whose rules are findings too, stays on)
    if not shown.stdout:
        _matches_snapshot(path, _why_unpatched(_findings(arguments)))
        return
    _matches_snapshot(path, shown.stdout)
    unpatched = _error_rules(_findings(arguments, "--no-verify-fixes"))
    copy, before = Path(path.name), path.read_text()

    fixed = run("check", *arguments, "--fix", "--unsafe-fixes")
    assert fixed.exit_code in (0, 1) and "reverted" not in fixed.stderr, fixed.stderr
    once = copy.read_text()
    ast.parse(once)
    written = "".join(difflib.unified_diff(before.splitlines(True), once.splitlines(True), f"a/{copy}", f"b/{copy}"))
    assert written == shown.stdout   # --fix writes what --fix-diff showed

    git("commit", "-qam", "fixed")   # --fix refuses a file with uncommitted changes
    _forget_imports()
    again = run("check", *arguments, "--fix", "--unsafe-fixes")
    assert again.exit_code in (0, 1) and "reverted" not in again.stderr, again.stderr
    assert copy.read_text() == once   # applying the fixes twice equals applying them once

    _forget_imports()
    after = _findings(arguments, "--no-verify-fixes")
    if TRAINING_CODE_NOTE in shown.stderr:   # the labels still need their step: the error moves on to them, no further
        assert {finding["layer"] for finding in after} <= {finding["layer"] for finding in _findings(arguments)}
        pytest.skip(f"patch checked; no training step: {shown.stderr.strip()}")
    assert rule_code(path) not in {finding["rule"] for finding in after}, after
    assert _error_rules(after) <= unpatched, f"new errors after the patch: {_error_rules(after) - unpatched}"

    assert _train_one_step(flags, target).startswith("one training step")


def test_onnx_fixes_are_never_applied(tmp_path, monkeypatch):
    """An exported graph is not the user's source: its fixes are shown, never written."""
    monkeypatch.chdir(ROOT)   # run_fixture names fixtures relative to the repository
    fixes = 0
    for path in (p for p in fixture_paths() if p.parent.parent.name == "onnx"):
        result = run_fixture(path, "bad", tmp_path)
        fixes += sum(len(f.fixes) for f in result.findings)
        applicable = [(f.rule, fix.title) for f in result.findings for fix in f.fixes if fix.applicability != "display"]
        assert not applicable, f"{path.name}: {applicable}"
    assert fixes, "no ONNX fixture has a fix: the test would prove nothing"
