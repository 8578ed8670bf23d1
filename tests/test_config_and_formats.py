"""pyproject configuration, inline suppression, and the SARIF / GitHub output formats."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner
from jsonschema import Draft7Validator

from shapecheck.cli import main
from shapecheck.config import load
from shapecheck.request import Flags, plan

REPO = Path(__file__).resolve().parents[1]
# The official schema (OASIS sarif-spec, sarif-schema-2.1.0.json); see tests/schemas/README.md.
SARIF_SCHEMA = json.loads((REPO / "tests/schemas/sarif-schema-2.1.0.json").read_text(encoding="utf-8"))

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
    result = run("check", "--changed-files", "models.py", "other.py")   # as pre-commit's hooks run it
    assert "models.py:binary" in result.output and "other.py" not in result.output


def test_the_audit_can_be_turned_off_in_the_configuration(project):
    pyproject = project / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("[tool.shapecheck]", "[tool.shapecheck]\naudit = false"))
    [request] = plan([], Flags(), load(pyproject))
    assert request.audit is False
    [request] = plan([], Flags(audit=True), load(pyproject))   # the command line overrides it
    assert request.audit is True


def test_a_library_layer_is_reported_and_suppressed_on_the_users_line(project):
    (project / "nets.py").write_text("import torchvision\n\n\ndef resnet():\n"
                                     "    return torchvision.models.resnet18(weights=None)\n\n\n"
                                     "def resnet_suppressed():\n"
                                     "    return torchvision.models.resnet18(weights=None)  # shapecheck: ignore[SC101]\n")
    args = ["--input", "2,3,64,64", "--loss", "BCEWithLogitsLoss", "--labels", "2,1"]
    reported = run("check", "nets.py:resnet", *args)
    assert "--> nets.py:5 (defined in torchvision/models/resnet.py:" in reported.output
    assert "SC101" not in run("check", "nets.py:resnet_suppressed", *args).output


def test_configured_paths_are_relative_to_pyproject(project, monkeypatch):
    (project / "src").mkdir()
    monkeypatch.chdir(project / "src")
    result = run("check")
    assert result.exit_code == 0, result.output
    assert "warning[SC101]" in result.output and "../models.py:binary" in result.output


def test_inline_comment_suppresses_the_finding_on_its_line(project):
    args = ["--input", "4,3,2,2", "--loss", "BCEWithLogitsLoss", "--labels", "4,1:float32"]
    assert "SC101" in run("check", "models.py:binary", *args).output
    assert "SC101" not in run("check", "models.py:binary_suppressed", *args).output


@pytest.mark.parametrize("text, key, line", [
    ('[tool.shapecheck]\nselct = ["SC1"]\n', "selct", 2),
    ('[tool.shapecheck]\nignore = "SC2"\n', "ignore", 2),
    ('[tool.shapecheck]\n\n[[tool.shapecheck.targets]]\ntarget = "m.py:f"\nlabel = "4"\n', "label", 5),
    ('[tool.shapecheck]\nseverity = { SC101 = "fatal" }\n', "severity", 2),
    ('[[tool.shapecheck.targets]]\ntarget = "a.py:f"\nloss = "MSELoss"\n\n'
     '[[tool.shapecheck.targets]]\ntarget = "b.py:f"\nloss = 1\n', "loss", 7),
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
    [annotation] = result.output.splitlines()      # one line per finding: the help lines are %0A-escaped
    assert annotation.endswith("(1 target per sample, not 10)%0Ahelp (verified, safe fix): Replace the head with 1 output: "
                               "`model[1] = nn.Linear(model[1].in_features, 1)`")


def test_sarif_log(project):
    log = sarif("check", "--labels", "4", exit_code=0)   # SC101 is configured down to a warning
    assert log["version"] == "2.1.0" and len(log["runs"]) == 1
    run_ = log["runs"][0]
    driver = run_["tool"]["driver"]
    ids = [rule["id"] for rule in driver["rules"]]
    assert "SC101" in ids and all(rule["help"]["markdown"].startswith("# SC") for rule in driver["rules"])
    assert all(rule["fullDescription"]["text"] != rule["shortDescription"]["text"] for rule in driver["rules"])
    [result] = run_["results"]
    assert result["ruleId"] == "SC101" and ids[result["ruleIndex"]] == "SC101" and result["level"] == "warning"
    region = result["locations"][0]["physicalLocation"]
    assert region["artifactLocation"] == {"uri": "models.py", "uriBaseId": "%SRCROOT%"}
    assert region["region"]["startLine"] == 6
    assert run_["originalUriBaseIds"]["%SRCROOT%"]["uri"] == project.as_uri() + "/"
    [invocation] = run_["invocations"]   # what was not checked is a note, and the run still succeeded
    assert invocation["executionSuccessful"] is True
    assert [n["level"] for n in invocation["toolExecutionNotifications"]] == ["note"]


def test_sarif_points_outside_the_project_with_file_uris(project):
    factory = f"{REPO / 'fixtures/torch/resnet50_single_class.py'}:build_model"
    log = sarif("check", factory, "--input", "2,3,64,64", "--loss", "BCEWithLogitsLoss", "--labels", "2",
                exit_code=0)
    [result] = [r for r in log["runs"][0]["results"] if r["ruleId"] == "SC101"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"] == {
        "uri": (REPO / "fixtures/torch/resnet50_single_class.py").as_uri()}
    [defined] = result["relatedLocations"]          # torchvision's own line for `fc`
    assert defined["physicalLocation"]["artifactLocation"]["uri"].endswith("/torchvision/models/resnet.py")
    assert defined["message"]["text"] == "`fc` is defined here"


def test_sarif_reports_a_target_that_could_not_be_loaded(project):
    log = sarif("check", "missing.py:build", exit_code=2)
    [invocation] = log["runs"][0]["invocations"]
    assert invocation["executionSuccessful"] is False and log["runs"][0]["results"] == []
    [notification] = invocation["toolExecutionNotifications"]
    assert notification["level"] == "error" and notification["message"]["text"].startswith("missing.py:build: ")


def test_sarif_uris_are_percent_encoded(project):
    (project / "my models.py").write_text(MODEL)
    log = sarif("check", "my models.py:binary", "--input", "4,3,2,2", "--loss", "BCEWithLogitsLoss", "--labels", "4,1",
                exit_code=0)
    [result] = log["runs"][0]["results"]
    assert result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "my%20models.py"


def sarif(*args, exit_code=1) -> dict:
    """Run `check --format sarif` and validate the log against the official SARIF 2.1.0 schema."""
    result = run(*args, "--format", "sarif")
    assert result.exit_code == exit_code, result.output
    log = json.loads(result.stdout)
    validator = Draft7Validator(SARIF_SCHEMA, format_checker=Draft7Validator.FORMAT_CHECKER)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(log)]
    assert not errors, errors
    return log


def test_trace_command_marks_the_failing_layer(project):
    (project / "broken.py").write_text("from torch import nn\n\n\ndef model():\n"
                                       "    return nn.Sequential(nn.Flatten(), nn.Linear(5, 2))\n")
    result = run("trace", "broken.py:model", "--input", "4,3,2,2")
    assert result.exit_code == 1   # the forward pass failed
    assert "1      Linear   [4, 12]       FAILED HERE" in result.output
