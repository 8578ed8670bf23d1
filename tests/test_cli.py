"""The command line: exit codes, one-line errors on stderr, text and JSON output."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from shapecheck.cli import main

MODELS = "fixtures/torch/cli_models.py"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def run(*args):
    return CliRunner().invoke(main, list(args))


def assert_one_line_error(result, fragment):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], result.stderr


def test_clean_model_exits_0():
    result = run("check", f"{MODELS}:classifier", "--input", "4,3,16,16", "--loss", "CrossEntropyLoss", "--labels", "4")
    assert result.exit_code == 0, result.output
    assert "no findings" in result.output
    assert result.stderr == ""


def test_error_finding_exits_1_with_help_lines():
    result = run("check", f"{MODELS}:binary_with_ten_outputs", "--input", "4x3x16x16", "--loss", "bce-with-logits",
                 "--labels", "4")
    assert result.exit_code == 1, result.output
    assert "error[SC101] `BCEWithLogitsLoss` input from `fc` has shape [4, 10]; labels have shape [4]" in result.output
    assert "help (verified, safe fix): Replace the head with 1 output: `model.fc = nn.Linear(model.fc.in_features, 1)`" \
        in result.output
    assert f"--> {MODELS}:19\n" in result.output   # the line that defines the layer


def test_replaced_head_points_at_the_factory_line():
    result = run("check", f"{MODELS}:binary_head_replaced", "--input", "4,3,16,16", "--loss", "BCEWithLogitsLoss",
                 "--labels", "4")
    assert result.exit_code == 1
    assert "labels have shape [4] (1 target per sample" not in result.output     # the head is right now
    assert "SC102" in result.output and "labels = labels.unsqueeze(1)" in result.output


def test_several_targets_in_one_call():
    result = run("check", f"{MODELS}:classifier", f"{MODELS}:softmax_in_forward", "--input", "4,3,16,16",
                 "--loss", "CrossEntropyLoss", "--labels", "4", "--format", "json")
    data = json.loads(result.output)
    assert [r["target"] for r in data["results"]] == [f"{MODELS}:classifier", f"{MODELS}:softmax_in_forward"]


def test_json_contract():
    result = run("check", f"{MODELS}:binary_with_ten_outputs", "--input", "4,3,16,16", "--loss", "BCEWithLogitsLoss",
                 "--labels", "4", "--format", "json")
    data = json.loads(result.output)
    assert set(data) == {"shapecheck", "results"}
    [entry] = data["results"]
    assert entry["framework"] == "torch" and entry["input_shape"] == [4, 3, 16, 16]
    assert entry["output_shape"] == [4, 10] and entry["loss"] == "BCEWithLogitsLoss"
    assert entry["labels"] == {"shape": [4], "dtype": "float32"} and entry["error"] is None
    fc = next(layer for layer in entry["layers"] if layer["name"] == "fc")
    assert fc == {"name": "fc", "type": "Linear", "input_shapes": [[4, 8]], "output_shape": [4, 10],
                  "source": f"{MODELS}:19"}
    [finding] = [f for f in entry["findings"] if f["rule"] == "SC101"]
    assert set(finding) == {"rule", "name", "severity", "category", "head", "layer", "message", "location",
                            "fixes"}
    assert finding["head"] is None   # a model with one output has one head
    assert entry["heads"] == [{"name": None, "output": "", "output_shape": [4, 10], "loss": "BCEWithLogitsLoss",
                               "labels": {"shape": [4], "dtype": "float32"}, "loss_check": entry["loss_check"]}]
    assert finding["category"] == "output_vs_loss" and finding["layer"] == "fc"
    assert finding["location"] == {"path": MODELS, "line": 19}
    assert finding["fixes"][0]["code"] == "model.fc = nn.Linear(model.fc.in_features, 1)"


def test_labels_file_enables_value_rules(tmp_path):
    labels = tmp_path / "labels.npy"
    np.save(labels, np.array([1, 10, 3, 4]))   # 1-based ids for 10 classes
    result = run("check", f"{MODELS}:classifier", "--input", "4,3,16,16", "--loss", "CrossEntropyLoss",
                 "--labels-file", str(labels))
    assert result.exit_code == 1
    assert "SC111" in result.output and "labels = labels - 1" in result.output


@pytest.mark.parametrize("args, fragment", [
    (["--input", "4,3,a", "--loss", "CrossEntropyLoss"], "invalid --input `4,3,a`: `a` is not a size"),
    (["--input", "2,,x"], "invalid --input `2,,x`: a size is missing"),
    (["--input", "4,3", "--labels", "4:"], "invalid --labels `4:`: no dtype after `:`"),
    (["--input", "4,3:flaot32"], "did you mean `float32`?"),
    (["--input", "4,3,16,16:float99"], "unknown dtype `float99`"),
    (["--input", "4,3,16,16", "--loss", "BCEWithLogitLoss"], "unknown loss `BCEWithLogitLoss`; did you mean `BCEWithLogitsLoss`?"),
    (["--input", "4,3,16,16", "--labels", "4", "--labels-file", "x.npy"], "either --labels or --labels-file"),
    (["--input", "4,3,16,16", "--labels-file", "missing.npy"], "labels file `missing.npy` does not exist"),
])
def test_bad_options_are_one_line_errors(args, fragment):
    assert_one_line_error(run("check", f"{MODELS}:classifier", *args), fragment)


def test_a_loss_without_contract_skips_only_the_loss_rules():
    result = run("check", f"{MODELS}:binary_with_ten_outputs", "--input", "4,3,16,16", "--loss", "DiceLoss",
                 "--labels", "4")
    assert result.exit_code == 0, result.output
    assert "note: loss `DiceLoss` has no contract in shapecheck (known: BCELoss, BCEWithLogitsLoss" in result.output
    assert "SC101" not in result.output


@pytest.mark.parametrize("target, fragment", [
    ("fixtures/torch/nope.py:build", "file `fixtures/torch/nope.py` does not exist"),
    (f"{MODELS}:missing", "has no callable `missing`"),
    (f"{MODELS}:raises", "raised while building the model: ValueError: dataset path not configured"),
    (f"{MODELS}:not_a_model", "returned a str, not a model"),
    ("no_such_package.models:build", "cannot import `no_such_package.models`"),
    ("model.unknown", "cannot check `model.unknown`"),
    ("missing.pt2", "model file `missing.pt2` does not exist"),
])
def test_unloadable_targets_are_one_line_errors(target, fragment):
    result = run("check", target, "--input", "4,3,16,16")
    assert_one_line_error(result, fragment)
    assert result.stdout == "0 errors, 0 warnings in 1 target; 1 could not be checked\n"


def test_missing_input_shape_is_an_error():
    assert_one_line_error(run("check", f"{MODELS}:classifier"), "declares no input shape")


def test_corrupt_labels_file(tmp_path):
    bad = tmp_path / "labels.npy"
    bad.write_bytes(b"not numpy")
    assert_one_line_error(run("check", f"{MODELS}:classifier", "--input", "4,3,16,16", "--labels-file", str(bad)),
                          "cannot read labels file")


def test_rules_and_rule_commands():
    listing = run("rules")
    assert listing.exit_code == 0 and "SC101  head-width-mismatch" in listing.output
    doc = run("rule", "sc101")
    assert doc.exit_code == 0 and doc.output.startswith("# SC101 head-width-mismatch")
    assert_one_line_error(run("rule", "SC999"), "unknown rule `SC999`")


def test_select_and_ignore():
    args = ["check", f"{MODELS}:binary_with_ten_outputs", "--input", "4,3,16,16", "--loss", "BCEWithLogitsLoss",
            "--labels", "4"]
    # ignoring the rules that explain the mismatch leaves the mismatch itself: the next explanation, then the
    # catch-all, which reports the framework's own verdict
    assert "error[SC102]" in run(*args, "--ignore", "SC101").output
    ignored = run(*args, "--ignore", "SC101", "--ignore", "SC102")
    assert ignored.exit_code == 1 and "error[SC100]" in ignored.output and "SC101" not in ignored.output
    assert run(*args, "--ignore", "SC101,SC102,SC100").exit_code == 0
    assert run(*args, "--select", "SC2").exit_code == 0
    assert run(*args, "--select", "SC1").exit_code == 1


@pytest.mark.slow
@pytest.mark.subprocess
def test_real_process_exit_codes_and_no_traceback():
    """The installed entry point, as a user runs it."""
    done = subprocess.run([sys.executable, "-m", "shapecheck", "check", f"{MODELS}:raises", "--input", "2,3,8,8"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
