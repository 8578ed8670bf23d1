"""pyproject configuration, inline suppression, and the SARIF / GitHub output formats."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from shapecheck.cli import main

MODEL = textwrap.dedent("""
    from torch import nn


    def binary():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 10))


    def binary_suppressed():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 10))  # shapecheck: ignore[SC101]
""")
CONFIG = textwrap.dedent("""
    [tool.shapecheck]
    severity = { SC101 = "warning" }

    [[tool.shapecheck.targets]]
    target = "models.py:binary"
    input = [4, 3, 2, 2]
    loss = "BCEWithLogitsLoss"
    labels = "4,1:float32"
""")


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "models.py").write_text(MODEL)
    (tmp_path / "pyproject.toml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_no_arguments_checks_the_configured_targets_with_their_severities(project):
    result = run("check")
    assert result.exit_code == 0, result.output          # SC101 configured down to a warning
    assert "warning[SC101]" in result.output and "models.py:binary" in result.output


def test_command_line_overrides_the_configuration(project):
    result = run("check", "--labels", "4,10:float32")
    assert result.exit_code == 0 and "no findings" in result.output


def test_a_changed_python_file_stands_for_its_configured_targets(project):
    (project / "other.py").write_text("x = 1\n")
    result = run("check", "models.py", "other.py")
    assert "models.py:binary" in result.output and "other.py" not in result.output


def test_inline_comment_suppresses_the_finding_on_its_line(project):
    args = ["--input", "4,3,2,2", "--loss", "BCEWithLogitsLoss", "--labels", "4,1:float32"]
    assert "SC101" in run("check", "models.py:binary", *args).output
    assert "SC101" not in run("check", "models.py:binary_suppressed", *args).output


@pytest.mark.parametrize("text, key, line", [
    ('[tool.shapecheck]\nselct = ["SC1"]\n', "selct", 2),
    ('[tool.shapecheck]\nignore = "SC2"\n', "ignore", 2),
    ('[tool.shapecheck]\n\n[[tool.shapecheck.targets]]\ntarget = "m.py:f"\nlabel = "4"\n', "label", 5),
    ('[tool.shapecheck]\nseverity = { SC101 = "fatal" }\n', "severity", 2),
])
def test_bad_configuration_names_the_key_and_line(tmp_path, monkeypatch, text, key, line):
    (tmp_path / "pyproject.toml").write_text(text)
    monkeypatch.chdir(tmp_path)
    result = run("check")
    assert result.exit_code == 2
    assert f"pyproject.toml:{line}: `{key}`" in result.stderr and "Traceback" not in result.stderr


def test_github_annotations(project):
    result = run("check", "--format", "github")
    assert result.output.startswith("::warning file=models.py,line=6,title=SC101 head-width-mismatch::")


def test_sarif_log(project):
    log = json.loads(run("check", "--format", "sarif", "--labels", "4").output)
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    driver = log["runs"][0]["tool"]["driver"]
    ids = [rule["id"] for rule in driver["rules"]]
    assert "SC101" in ids and all(rule["help"]["markdown"].startswith("# SC") for rule in driver["rules"])
    [result] = log["runs"][0]["results"]
    assert result["ruleId"] == "SC101" and ids[result["ruleIndex"]] == "SC101" and result["level"] == "warning"
    region = result["locations"][0]["physicalLocation"]
    assert region["artifactLocation"]["uri"] == "models.py" and region["region"]["startLine"] == 6


def test_trace_command_marks_the_failing_layer(project):
    (project / "broken.py").write_text("from torch import nn\n\n\ndef model():\n"
                                       "    return nn.Sequential(nn.Flatten(), nn.Linear(5, 2))\n")
    result = run("trace", "broken.py:model", "--input", "4,3,2,2")
    assert result.exit_code == 0
    assert "1      Linear   [4, 12]       FAILED HERE" in result.output
