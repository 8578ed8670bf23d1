"""The wheel carries the rule catalogue: a non-editable install prints rule docs without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from rule_fixtures import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True)
    [built] = out.glob("shapecheck_dl-*.whl")
    return built


@pytest.mark.slow
@pytest.mark.subprocess
def test_wheel_ships_every_rule_doc(wheel):   # pip builds the wheel: a process, and seconds under load
    names = zipfile.ZipFile(wheel).namelist()
    docs = {n.rsplit("/", 1)[1] for n in names if n.startswith("shapecheck/ruledocs/")}
    assert docs == {p.name for p in (ROOT / "rules").glob("SC*.md")}
    assert "shapecheck/cli.py" in names


@pytest.mark.slow
@pytest.mark.subprocess
def test_installed_wheel_prints_a_rule_doc(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    str(wheel)], check=True)
    # run from an empty folder with the installed copy first on the path: the source tree's rules/ is not reachable
    code = f"import sys; sys.path.insert(0, {str(site)!r}); from shapecheck.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code, "rule", "SC101"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("# SC101 head-width-mismatch")
    located = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(site)!r}); "
                              "import shapecheck.docs as d; print(d.doc_path('SC101'))"],
                             cwd=tmp_path, capture_output=True, text=True)
    assert str(site) in located.stdout


def test_no_rule_imports_another_rule():
    """Rules share predicates through `rules/common.py` and `rules/predicates.py`; precedence lives in the engine."""
    import ast

    rules = Path(__file__).resolve().parents[1] / "shapecheck" / "rules"
    offenders = []
    for module in sorted(rules.glob("sc[0-9][0-9][0-9]_*.py")) + [rules / "common.py", rules / "predicates.py"]:
        for node in ast.walk(ast.parse(module.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            offenders += [f"{module.name} imports {name}" for name in names
                          if name.startswith("shapecheck.rules.sc")]
    assert not offenders, offenders

