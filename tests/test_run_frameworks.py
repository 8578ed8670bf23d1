"""`shapecheck run` on scripts as they are written today (issue 20, item 2): PyTorch Lightning, a Hugging Face
Trainer with its own `compute_loss`, Accelerate, and `torchrun`-style DDP and FSDP scripts run as one process on
this CPU machine. Each first step gets the findings `shapecheck check` gives for the same model, labels and loss, and
no optimiser step runs. Also `run --continue`, which reports at the first step and lets the script go on."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training_steps import assert_no_training_step

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

BERT = ("from transformers import AutoModelForSequenceClassification, BertConfig\n\n\ndef build():\n"
        "    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,"
        " vocab_size=100)\n    return AutoModelForSequenceClassification.from_config(config)\n")


def sequential(*layers: str) -> str:
    return f"from torch import nn\n\n\ndef build():\n    return nn.Sequential({', '.join(layers)})\n"


def shapecheck(*args, cwd, env=None):
    return subprocess.run([sys.executable, "-m", "shapecheck", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def run_json(script: str, folder: Path):
    shutil.copy(SCRIPTS / script, folder / script)
    done = shapecheck("run", "--format", "json", script, cwd=folder)
    assert done.returncode in (0, 1), done.stderr
    [result] = json.loads(done.stdout)["results"]
    return done, result


def check_json(folder: Path, factory: str, labels: np.ndarray, loss: str, *inputs: str):
    (folder / "factory.py").write_text(factory)
    np.save(folder / "labels.npy", labels)
    done = shapecheck("check", "factory.py:build", *(a for shape in inputs for a in ("--input", shape)),
                      "--loss", loss, "--labels-file", "labels.npy", "--format", "json", cwd=folder)
    [result] = json.loads(done.stdout)["results"]
    return result


def diagnosis(result, labels: str = "labels") -> list:
    """What a finding says and what it proposes, without where the model came from; `run` writes its recipes with
    the script's name for the labels (`y`), read back as `labels` to compare with `check`."""
    def in_check_words(code: str) -> str:
        return re.sub(rf"(?<![\w.]){re.escape(labels)}\b", "labels", code)
    return [(f["rule"], f["layer"], f["message"],
             [(in_check_words(fix["code"]), fix["verified"]) for fix in f["fixes"]]) for f in result["findings"]]


def test_lightning_training_step_with_a_datamodule_is_checked_like_check(tmp_path):
    pytest.importorskip("lightning")   # requirements-dev.txt
    done, result = run_json("lightning_thousand_way_head.py", tmp_path)
    assert done.returncode == 1
    assert [f["rule"] for f in result["findings"]] == ["SC101"]
    assert any("checked the first training step: lightning_thousand_way_head.py:33" in n for n in result["notes"])
    checked = check_json(tmp_path, "from lightning_thousand_way_head import Classifier\n\n\ndef build():\n"
                         "    return Classifier()\n", np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.float32),
                         "BCEWithLogitsLoss", "8,3,16,16")
    assert diagnosis(result, labels="y") == diagnosis(checked)
    assert_no_training_step(tmp_path)


def test_hugging_face_trainer_with_its_own_compute_loss_is_checked_like_check(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    done, result = run_json("hf_custom_compute_loss.py", tmp_path)
    assert done.returncode == 1
    assert result["loss"] == "BCEWithLogitsLoss" and result["labels"]["shape"] == [4, 5]
    checked = check_json(tmp_path, BERT, np.ones((4, 5), dtype=np.float32), "BCEWithLogitsLoss",
                         "4,12:int64", "4,12:int64")
    assert [d[:3] for d in diagnosis(result)] == [d[:3] for d in diagnosis(checked)]
    assert [f["rule"] for f in result["findings"]] == ["SC101"]
    assert_no_training_step(tmp_path)


def test_accelerate_loop_is_checked_like_check(tmp_path):
    pytest.importorskip("accelerate")
    done, result = run_json("accelerate_loop.py", tmp_path)
    assert done.returncode == 1
    checked = check_json(tmp_path, sequential("nn.Linear(10, 16)", "nn.ReLU()", "nn.Linear(16, 1)"),
                         np.random.randn(8).astype(np.float32), "MSELoss", "8,10")
    assert [f["rule"] for f in result["findings"]] == ["SC102"]
    assert diagnosis(result, labels="y") == diagnosis(checked)
    assert_no_training_step(tmp_path)


def test_torchrun_ddp_script_runs_as_one_process_and_comes_out_clean(tmp_path):
    done, result = run_json("ddp_torchrun.py", tmp_path)
    assert done.returncode == 0, done.stderr
    assert result["findings"] == [] and result["target"].startswith("Sequential")   # the model, not the wrapper
    checked = check_json(tmp_path, sequential("nn.Linear(20, 32)", "nn.ReLU()", "nn.Linear(32, 4)"),
                         np.arange(8) % 4, "CrossEntropyLoss", "8,20")
    assert diagnosis(checked) == []
    assert_no_training_step(tmp_path)


def test_torchrun_fsdp_script_is_checked_inside_its_wrapper_like_check(tmp_path):
    done, result = run_json("fsdp_ten_classes.py", tmp_path)
    assert done.returncode == 1, done.stderr
    checked = check_json(tmp_path, sequential("nn.Linear(20, 32)", "nn.ReLU()", "nn.Linear(32, 4)"),
                         np.arange(8), "CrossEntropyLoss", "8,20")
    assert [f["rule"] for f in result["findings"]] == ["SC110"]
    assert diagnosis(result, labels="y") == diagnosis(checked)
    assert_no_training_step(tmp_path)


def test_a_script_that_needs_a_gpu_is_one_line_naming_its_line(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the script runs")
    shutil.copy(SCRIPTS / "cuda_only.py", tmp_path)
    done = shapecheck("run", "cuda_only.py", cwd=tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "the script moves tensors to CUDA (cuda_only.py:7); this machine has no GPU: use `device = " in lines[0]


def test_continue_reports_at_the_first_step_before_the_script_goes_on(tmp_path):
    shutil.copy(SCRIPTS / "marker_after_first_step.py", tmp_path)
    done = shapecheck("run", "--continue", "marker_after_first_step.py", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    report, marker = done.stdout.index("no findings"), done.stdout.index("STEP 0 DONE")
    assert report < marker and "STEP 2 DONE" in done.stdout
