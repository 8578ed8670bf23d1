"""A user's mistake never passes silently and is never blamed on the model: one line on stderr, exit code 2 (1 for
`trace` when the forward pass fails), and the hint that fixes the invocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from shapecheck.cli import main

MODELS = textwrap.dedent("""
    from torch import nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2))

        def forward(self, x):
            return self.head(self.bn(self.conv(x)))


    class TwoInputs(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x, lengths):
            return self.fc(x)


    def build_model():
        return Net()


    def two_inputs():
        return TwoInputs()


    def mlp():
        return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))


    def broken():
        return nn.Sequential(nn.Linear(4, 3), nn.Linear(5, 2))


    def suppressed():
        return nn.Sequential(nn.Flatten(), nn.Linear(12, 10))  # shapecheck: ignore[SC101]


    def helper(size):
        return size
""")


@pytest.fixture
def factories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.py").write_text(MODELS)
    return "models.py"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line(result, exit_code: int, fragment: str):
    assert result.exit_code == exit_code, result.output
    assert "Traceback" not in result.output + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


MISTAKES = [
    pytest.param(["check", "models.py", "--input", "2,3,8,8"], 2,
                 "`models.py` names no factory: give one as `models.py:build_model` "
                 "(found: build_model, two_inputs, mlp, broken, suppressed, Net, TwoInputs)", id="no-factory"),
    pytest.param(["trace", "models.py"], 2, "`models.py` names no factory", id="trace-no-factory"),
    pytest.param(["check", "models.py:build_model", "--input", "2", "3", "8", "8", "--loss", "CrossEntropyLoss"], 2,
                 "sizes are separated by commas: --input 2,3,8,8", id="sizes-with-spaces"),
    pytest.param(["check", "models.py:mlp", "--input=2,4", "--labels", "2", "1"], 2,
                 "sizes are separated by commas: --labels 2,1", id="label-sizes-with-spaces"),
    pytest.param(["trace", "models.py:build_model", "--input", "2", "3", "8", "8"], 2,
                 "sizes are separated by commas: --input 2,3,8,8", id="trace-sizes-with-spaces"),
    pytest.param(["check", "models.py:build_model", "--input", "3,8,8", "--loss", "CrossEntropyLoss", "--labels", "2"],
                 2, "models.py:build_model: the input has no batch axis: --input 2,3,8,8", id="no-batch-axis-conv"),
    pytest.param(["check", "models.py:mlp", "--input", "4"], 2, "the input has no batch axis: --input N,4",
                 id="no-batch-axis-linear"),
    pytest.param(["check", "models.py:two_inputs", "--input", "2,4"], 2,
                 "models.py:two_inputs: forward takes 2 inputs (x, lengths): repeat --input, one per input",
                 id="one-input-for-two"),
    pytest.param(["check", "models.py:mlp", "--input", "2,4", "--input", "2"], 2,
                 "forward takes 1 input (input), not 2: give one --input per input", id="two-inputs-for-one"),
    pytest.param(["check", "models.py"], 2, "`models.py` names no factory: give one as `models.py:build_model`",
                 id="file-without-factory-or-options"),
    pytest.param(["check", "models.py:buid_model", "--input", "2,3,8,8"], 2,
                 "`models.py` has no callable `buid_model`; did you mean `build_model`?", id="factory-typo"),
    pytest.param(["run", "--epochs", "1", "train.py", "--lr", "0.1"], 2,
                 "shapecheck's options go before the script; the script's after it: "
                 "shapecheck run [OPTIONS] train.py --epochs 1 --lr 0.1", id="script-options-first"),
    pytest.param(["trace", "models.py:broken", "--input", "2,4"], 1,
                 "models.py:broken: the forward pass failed in `1`: RuntimeError:", id="trace-forward-fails"),
]


@pytest.mark.parametrize("args, exit_code, fragment", MISTAKES)
def test_a_mistake_is_one_line_with_its_hint(factories, args, exit_code, fragment):
    assert_one_line(run(*args), exit_code, fragment)


def test_a_changed_file_from_pre_commit_without_configured_targets_is_skipped(factories):
    result = run("check", "--changed-files", "models.py")   # as the hooks in .pre-commit-hooks.yaml run it
    assert result.exit_code == 0 and result.stderr == "", result.output


def test_a_batched_input_is_checked_as_usual(factories):
    result = run("check", "models.py:build_model", "--input", "2,3,8,8", "--loss", "CrossEntropyLoss", "--labels", "2")
    assert result.exit_code == 0, result.output


def test_a_real_model_bug_is_not_blamed_on_the_batch_axis(factories):
    result = run("check", "models.py:broken", "--input", "2,4")
    assert result.exit_code == 1 and "no batch axis" not in result.output + result.stderr
    assert "error[SC201]" in result.output


def test_suppressed_findings_are_counted(factories):
    args = ["check", "models.py:suppressed", "--input", "2,3,2,2", "--loss", "BCEWithLogitsLoss", "--labels", "2,1"]
    text = run(*args)
    assert text.exit_code == 0 and "SC101" not in text.output
    assert text.output.endswith("0 errors, 0 warnings in 1 target (1 suppressed)\n"), text.output
    [entry] = json.loads(run(*args, "--format", "json").output)["results"]
    assert entry["suppressed"] == 1 and entry["findings"] == []


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_dotted_module_is_found_from_the_project_folder(tmp_path):
    """As `python -m` has it, though the `shapecheck` script's own folder heads the import path."""
    package = tmp_path / "mistakes_project"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text("from torch import nn\n\n\ndef build():\n    return nn.Linear(4, 2)\n")
    command = Path(sys.executable).parent / "shapecheck"
    done = subprocess.run([str(command), "check", "mistakes_project.nets:build", "--input", "2,4"], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mistakes_project.nets:build" in done.stdout
