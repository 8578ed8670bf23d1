"""Every rule: its bad fixture reports it (snapshot of the full text output), its good fixture is clean, and the
examples its doc quotes still print what the doc says."""

from __future__ import annotations

import os
import re
import shlex

import pytest
from click.testing import CliRunner

from rule_fixtures import ROOT, fixture_id, fixture_paths, rule_code, run_fixture
from shapecheck import engine, pipeline, render
from shapecheck.cli import main
from shapecheck.docs import doc_path
from shapecheck.rules import load_rules

SNAPSHOTS = ROOT / "tests" / "snapshots"
UPDATE = os.environ.get("SHAPECHECK_UPDATE_SNAPSHOTS") == "1"
FIXTURES = fixture_paths()


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch):
    monkeypatch.chdir(ROOT)   # fixture paths in the output are relative to the repository


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_bad_fixture_reports_the_rule(path, tmp_path):
    result = run_fixture(path, "bad", tmp_path)
    assert result.error is None, result.error
    code = rule_code(path)
    assert code in {f.rule for f in result.findings}, render.to_text([result])
    text = render.to_text([result])
    snapshot = SNAPSHOTS / path.parent.parent.name / f"{path.stem}.txt"
    if UPDATE or not snapshot.exists():
        snapshot.parent.mkdir(exist_ok=True)
        snapshot.write_text(text + "\n")
        if not UPDATE:
            pytest.fail(f"new snapshot written to {snapshot.relative_to(ROOT)}; review it and re-run")
    assert text + "\n" == snapshot.read_text()
    assert code in _reported_alone(result, code), f"--select {code} alone does not report {code}"


def _reported_alone(result, code: str) -> set[str]:
    """The rules reported when only `code` is selected (the engine again, on the same trace, loss and labels)."""
    trace = result.trace
    recipes = pipeline.recipes_for(trace.framework, trace.producer, trace.library)
    return {f.rule for f in engine.check(trace, result.loss, result.labels, recipes, select={code},
                                         loss_check=result.loss_check)}


@pytest.mark.parametrize("path", FIXTURES, ids=fixture_id)
def test_good_fixture_is_clean(path, tmp_path):
    result = run_fixture(path, "good", tmp_path, verify_fixes=False)   # asserts on findings, never on fixes
    assert result.error is None, result.error
    code = rule_code(path)
    assert code not in {f.rule for f in result.findings}, render.to_text([result])
    assert not result.has_errors, render.to_text([result])


def test_every_rule_has_a_fixture():
    covered = {rule_code(path) for path in FIXTURES}
    missing = sorted(set(load_rules()) - covered - {"SC901"})
    assert not missing, f"rules without a bad/good fixture in fixtures/*/rules: {missing}"


@pytest.mark.parametrize("code", sorted(load_rules()))
def test_every_rule_has_a_doc_with_the_standard_sections(code):
    path = doc_path(code)
    assert path is not None, f"rules/{code}-*.md is missing"
    assert path.name == f"{code}-{load_rules()[code].name}.md"
    text = path.read_text()
    for heading in ("## What it does", "## Why is this bad?", "## Example", "## Use instead", "## Fix recipe"):
        assert heading in text, f"{path.name} lacks `{heading}`"


def _doc_examples():
    """Rule docs whose Example runs a model.py through `shapecheck check` and quotes what it reports."""
    pattern = re.compile(r"Running `shapecheck (check [^`]*)`[^\n]*reports:\n```text\n(.*?)```", re.S)
    examples = []
    for code in sorted(load_rules()):
        path = doc_path(code)
        example = path.read_text().split("## Example", 1)[-1].split("## Use instead", 1)[0] if path else ""
        run, model = pattern.search(example), re.search(r"```python\n(.*?)```", example, re.S)
        if run and model and "--labels-file" not in run.group(1):
            examples.append(pytest.param(model.group(1), shlex.split(run.group(1)), run.group(2).strip(), id=code))
    return examples


DOC_EXAMPLES = _doc_examples()


def test_docs_quote_runnable_examples():
    assert len(DOC_EXAMPLES) >= 20, "the doc example pattern no longer matches the rule docs"


@pytest.mark.parametrize("model, args, quoted", DOC_EXAMPLES)
def test_doc_example_prints_what_the_doc_quotes(model, args, quoted, tmp_path, monkeypatch):
    (tmp_path / "model.py").write_text(model)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, args)
    assert result.stdout.split("\n\n")[0].strip() == quoted


def test_readme_examples_are_the_fixtures_current_output():
    """The README quotes a few bad fixtures as they print; each quote must be its snapshot's finding block."""
    section = (ROOT / "README.md").read_text().split("A few of them, as they print", 1)[1].split("```")[1]
    quotes = [block.strip() for block in section.strip().split("\n\n") if block.strip()]
    assert len(quotes) >= 3
    for quote in quotes:
        framework, stem = re.match(r"fixtures/(\w+)/rules/(\w+)\.py:bad", quote).groups()
        snapshot = (SNAPSHOTS / framework / f"{stem}.txt").read_text()
        assert quote == snapshot.split("\n\n")[0].strip(), stem
