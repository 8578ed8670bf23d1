"""`shapecheck run SCRIPT`: real training scripts in a temporary folder run to their first training step, which is
checked like `shapecheck check` would check it, and stopped before any optimiser step."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from training_steps import assert_no_training_step

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "fixtures" / "scripts"
# every test runs `python -m shapecheck run` on a real training script
pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def shapecheck(*args, cwd):
    return subprocess.run([sys.executable, "-m", "shapecheck", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


def run_json(script: str, folder: Path, *options):
    shutil.copy(SCRIPTS / script, folder / script)
    done = shapecheck("run", "--format", "json", *options, script, cwd=folder)
    assert done.returncode in (0, 1), done.stderr
    [result] = json.loads(done.stdout)["results"]
    return done, result


def diagnosis(result) -> list:
    """What a finding says, without where the model came from."""
    return [(f["rule"], f["layer"], f["message"], [(fix["code"], fix["verified"]) for fix in f["fixes"]])
            for f in result["findings"]]


def test_seed_bug_in_a_dataloader_loop_is_the_same_diagnosis_as_check_and_no_step_runs(tmp_path):
    done, result = run_json("resnet50_one_class.py", tmp_path)
    assert done.returncode == 1
    assert [f["rule"] for f in result["findings"]] == ["SC101"]
    assert result["input_shape"] == [8, 3, 64, 64] and result["labels"]["shape"] == [8]
    assert any("checked the first training step: resnet50_one_class.py:32" in n for n in result["notes"])
    # the same model, batch, loss and labels through `shapecheck check`
    (tmp_path / "factory.py").write_text("import torchvision\n\n\ndef build():\n"
                                         "    return torchvision.models.resnet50(weights=None)\n")
    np.save(tmp_path / "labels.npy", np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=np.float32))
    check = shapecheck("check", "factory.py:build", "--input", "8,3,64,64", "--loss", "BCEWithLogitsLoss",
                       "--labels-file", "labels.npy", "--format", "json", cwd=tmp_path)
    [checked] = json.loads(check.stdout)["results"]
    assert [d[:3] for d in diagnosis(result)] == [d[:3] for d in diagnosis(checked)]
    # the same recipes, verified alike; `run` writes the label step with the script's own name for the labels
    (head, run_labels), (same_head, check_labels) = diagnosis(result)[0][3], diagnosis(checked)[0][3]
    assert head == same_head and run_labels[1] == check_labels[1]
    assert run_labels[0] == "y = y.unsqueeze(1)" and check_labels[0] == "labels = labels.unsqueeze(1)"
    assert_no_training_step(tmp_path)   # stopped before the optimiser: the weights at exit are those before


def test_recipes_speak_the_scripts_own_names(tmp_path):
    """`xb, yb` and `F.binary_cross_entropy_with_logits(probs, yb)`: the label step reshapes `yb`, and the loss
    switch is the functional loss the script calls, on its own arguments."""
    done, result = run_json("functional_loss_own_names.py", tmp_path)
    codes = {f["rule"]: [fix["code"] for fix in f["fixes"]] for f in result["findings"]}
    assert codes["SC102"] == ["yb = yb.unsqueeze(1)"]
    assert "loss = F.binary_cross_entropy(probs, yb)" in codes["SC151"]
    assert "labels" not in json.dumps(codes) and "criterion" not in json.dumps(codes)


def test_continue_lets_the_script_train_after_the_report(tmp_path):
    done, result = run_json("resnet50_one_class.py", tmp_path, "--continue")
    assert [f["rule"] for f in result["findings"]] == ["SC101"]
    assert "after the checked step: Target size (torch.Size([8])) must be the same as input size" in done.stderr


def test_loss_reading_a_flattened_output_checks_what_the_loss_received(tmp_path):
    done, result = run_json("tagger_labels_not_flattened.py", tmp_path)
    assert result["output_shape"] == [48, 5] and result["labels"]["shape"] == [4, 12]
    [finding] = result["findings"]
    assert finding["rule"] == "SC100" and "[48, 5]" in finding["message"]
    assert finding["fixes"][0]["verified"] and finding["fixes"][0]["edits"][0]["args"] == [[48]]
    script = tmp_path / "tagger_labels_not_flattened.py"
    script.write_text(script.read_text().replace(", tags)   # the tags", ", tags.view(-1))   # the tags"))
    done = shapecheck("run", script.name, cwd=tmp_path)
    assert done.returncode == 0 and "no findings" in done.stdout, done.stdout + done.stderr


def test_a_forward_pass_that_raises_is_diagnosed_with_its_batch(tmp_path):
    done, result = run_json("forward_crashes.py", tmp_path)
    assert done.returncode == 1
    [finding] = result["findings"]
    assert finding["rule"] == "SC201" and finding["layer"] == "fc"
    assert finding["location"] == {"path": "forward_crashes.py", "line": 11}
    assert "receives [8, 6272]" in finding["message"]


@pytest.mark.parametrize("script, rule", [("keras_fit_arrays.py", "SC155"), ("keras_fit_dataset.py", "SC202")])
def test_keras_fit_first_batch_is_checked_with_the_compiled_loss(tmp_path, script, rule):
    done, result = run_json(script, tmp_path)
    assert done.returncode == 1, done.stderr
    assert [f["rule"] for f in result["findings"]] == [rule]
    assert result["input_shape"][0] == 16 and result["loss_source"] == "compile config"
    assert not (tmp_path / "after.keras").exists()


def test_hugging_face_trainer_first_compute_loss_is_checked(tmp_path):
    pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    done, result = run_json("hf_trainer_five_labels.py", tmp_path)
    assert done.returncode == 1, done.stderr
    [finding] = result["findings"]
    assert finding["rule"] == "SC110" and "num_labels=4" in finding["fixes"][0]["code"]
    # ids up to 3 in one batch say the model needs at least 4 labels, not how many the dataset has
    assert "at least 4" in finding["fixes"][0]["title"] and not finding["fixes"][0]["verified"]


def test_scripts_that_never_train_are_one_line_errors(tmp_path):
    (tmp_path / "quiet.py").write_text("print('nothing to train')\n")
    (tmp_path / "broken.py").write_text("import sys\nraise FileNotFoundError('data/train.csv')\n")
    (tmp_path / "slow.py").write_text("import time\nwhile True:\n    time.sleep(0.1)\n")
    for script, message, extra in (("quiet.py", "finished without a training step", ()),
                                   ("broken.py", "raised FileNotFoundError before its first training step: "
                                                 "data/train.csv", ()),
                                   ("missing.py", "does not exist", ()),
                                   ("slow.py", "did not reach its first training step within 1 s", ("--timeout", 1))):
        done = shapecheck("run", *extra, script, cwd=tmp_path)
        lines = [line for line in done.stderr.splitlines() if line.strip()]
        assert done.returncode == 2 and len(lines) == 1 and message in lines[0], done.stderr


def test_script_arguments_reach_the_script(tmp_path):
    (tmp_path / "args.py").write_text("import sys\nprint(sys.argv)\n")
    done = shapecheck("run", "args.py", "--epochs", "3", "-v", cwd=tmp_path)
    assert "['args.py', '--epochs', '3', '-v']" in done.stdout
