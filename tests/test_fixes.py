"""Verified fix recipes and source patches (--fix-diff, --fix): every recipe is applied in memory, re-checked and
trained once before it is called verified; patches change only the user's own lines."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from shapecheck import pipeline
from shapecheck.cli import main
from shapecheck.request import Flags

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "fixtures" / "torch" / "fixes" / "models.py"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A git project holding a copy of the fixture models, committed (so --fix may write it)."""
    shutil.copy(MODELS, tmp_path / "models.py")
    np.save(tmp_path / "ten_classes.npy", np.arange(4) % 10)
    np.save(tmp_path / "binary.npy", np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32))
    for command in (["git", "init", "-q"], ["git", "add", "."],
                    ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "models"]):
        subprocess.run(command, cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    for name in [n for n in sys.modules if n.startswith("_shapecheck_target_")]:
        monkeypatch.delitem(sys.modules, name)   # each test imports its own copy
    return tmp_path


def json_findings(*args):
    result = run("check", *args, "--format", "json")
    return json.loads(result.output)["results"][0]["findings"]


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_seed_recipe_is_verified_by_a_training_step(project):
    [finding] = json_findings(f"{MODELS}:single_class_resnet", "--input", "4,3,64,64", "--loss",
                              "BCEWithLogitsLoss", "--labels-file", "binary.npy")
    head, labels = finding["fixes"]
    assert finding["rule"] == "SC101"
    assert head["verified"] and labels["verified"]
    assert "one training step on 2 samples" in head["evidence"]
    assert head["edits"] == [{"on": "layer", "op": "resize", "args": [["out", 1]], "layer": "fc"}]


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_a_class_count_read_from_one_batch_is_at_least_n_and_never_verified_as_exact(project):
    np.save("seven_ids.npy", np.array([0, 1, 2, 3, 4, 5, 6, 2]))
    findings = json_findings(f"{MODELS}:softmax_head", "--input", "8,16", "--loss", "CrossEntropyLoss",
                             "--labels-file", "seven_ids.npy")
    by_rule = {f["rule"]: f for f in findings}
    head, numbering = by_rule["SC110"]["fixes"]
    assert "at least 7" in head["title"] and not head["verified"]
    assert head["applicability"] == "display" and "at least" in head["reason"]
    assert "lower bound" in head["evidence"]
    # ids are numbered once for the dataset: never a per-batch `unique`, which numbers them anew in every batch
    assert numbering["applicability"] == "display" and "whole dataset" in numbering["code"]
    assert "unique" not in json.dumps(findings)


def test_verification_never_touches_the_users_weights():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(16, 4), torch.nn.Softmax(dim=1))
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    loaded = _loaded(model)
    result = pipeline.run(Flags(inputs=["8,16"], loss="CrossEntropyLoss", labels="8").request(loaded.target, loaded))
    assert any(fix.verified for finding in result.findings for fix in finding.fixes)
    assert all(torch.equal(before[name], tensor) for name, tensor in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_no_verify_fixes_leaves_recipes_untried(project):
    [finding] = json_findings(f"{MODELS}:softmax_head", "--input", "8,16", "--loss", "CrossEntropyLoss",
                              "--labels", "8", "--no-verify-fixes")
    assert not any(fix["verified"] for fix in finding["fixes"])


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_fix_diff_changes_the_layer_line_and_the_patched_file_checks_clean(project):
    args = ("models.py:flattened_cnn", "--input", "4,1,28,28", "--loss", "CrossEntropyLoss",
            "--labels-file", "ten_classes.npy")
    diff = run("check", *args, "--fix-diff")
    assert "-        self.fc = nn.Linear(1050, 10)   # the flattened map is 8 * 14 * 14 = 1568" in diff.output
    assert "+        self.fc = nn.Linear(1568, 10)   # the flattened map is 8 * 14 * 14 = 1568" in diff.output
    assert Path("models.py").read_text() == MODELS.read_text()   # --fix-diff writes nothing
    written = run("check", *args, "--fix")
    assert "fixed 1 finding in models.py" in written.stderr
    assert written.exit_code == 0   # nothing is left to fix (ruff's --fix exits 0 then too)
    _forget_imports()
    assert run("check", *args).exit_code == 0


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_dropping_an_activation_is_an_unsafe_fix(project):
    args = ("models.py:softmax_head", "--input", "8,16", "--loss", "CrossEntropyLoss", "--labels", "8")
    [finding] = json_findings(*args)
    assert finding["fixes"][0]["applicability"] == "unsafe"
    safe_only = run("check", *args, "--fix")
    assert safe_only.exit_code == 1 and Path("models.py").read_text() == MODELS.read_text()
    assert "add --unsafe-fixes" in safe_only.stderr
    assert "1 error left to fix (1 with an unsafe fix: --fix --unsafe-fixes)" in safe_only.stderr
    assert "1 more with --fix --unsafe-fixes" in run("check", *args).output


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_fix_drops_a_functional_softmax_and_a_sigmoid_module(project):
    diff = run("check", "models.py:softmax_head", "--input", "8,16", "--loss", "CrossEntropyLoss", "--labels", "8",
               "--fix-diff", "--unsafe-fixes").output
    assert "-        return F.softmax(self.fc(x), dim=1)   # CrossEntropyLoss applies its own" in diff
    assert "+        return self.fc(x)   # CrossEntropyLoss applies its own" in diff
    np.save("binary_column.npy", np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32))
    diff = run("check", "models.py:sequential_sigmoid", "--input", "4,16", "--loss", "BCEWithLogitsLoss",
               "--labels-file", "binary_column.npy", "--fix-diff", "--unsafe-fixes").output
    assert "-    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())" in diff
    assert "+    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1), nn.Identity())" in diff


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_softmax_over_one_value_becomes_a_sigmoid_proven_by_the_audit_of_the_copy(project):
    np.save("binary_column.npy", np.array([[0.0], [1.0], [1.0], [0.0]], dtype=np.float32))
    args = ("models.py:one_value_softmax", "--input", "4,16", "--loss", "BCELoss", "--labels-file", "binary_column.npy")
    [finding] = json_findings(*args)
    sigmoid = finding["fixes"][0]
    assert finding["rule"] == "SC155" and sigmoid["verified"]
    # the measured facts (no gradient, a constant output) were measured again on the fixed copy, and are gone
    assert sigmoid["evidence"].startswith("re-checked and re-audited clean")
    assert sigmoid["edits"][0]["op"] == "swap_op"   # the softmax itself, not a sigmoid appended after it
    diff = run("check", *args, "--fix-diff", "--unsafe-fixes").output
    assert "+        return (self.fc(x) + 0.5).sigmoid()" in diff   # no import needed, the argument kept whole


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_library_head_is_replaced_after_the_users_call(project):
    result = run("check", "models.py:single_class_resnet", "--input", "4,3,64,64", "--loss", "BCEWithLogitsLoss",
                 "--labels", "4", "--fix-diff")
    assert "+    model = torchvision.models.resnet18(weights=None)  # keeps its 1000-way head" in result.output
    assert "+    model.fc = nn.Linear(model.fc.in_features, 1)" in result.output
    assert "+    return model" in result.output
    assert "also change your training code: SC101: Then match the labels" in result.stderr
    fixed = run("check", "models.py:single_class_resnet", "--input", "4,3,64,64", "--loss", "BCEWithLogitsLoss",
                "--labels", "4", "--fix")
    # the head is patched, but the labels' step is the training code's: the error is not gone until it is taken
    assert fixed.exit_code == 1 and "1 error left to fix" in fixed.stderr, fixed.stderr


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_fix_refuses_a_file_with_uncommitted_changes(project):
    Path("models.py").write_text(Path("models.py").read_text() + "# local edit\n")
    result = run("check", "models.py:flattened_cnn", "--input", "4,1,28,28", "--loss", "CrossEntropyLoss",
                 "--labels-file", "ten_classes.npy", "--fix")
    assert result.exit_code == 2
    assert "uncommitted changes" in result.stderr
    assert Path("models.py").read_text().endswith("# local edit\n")


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_fix_never_writes_library_code_or_outside_the_project(project, tmp_path_factory):
    outside = tmp_path_factory.mktemp("elsewhere")
    shutil.copy(MODELS, outside / "models.py")
    result = run("check", f"{outside / 'models.py'}:flattened_cnn", "--input", "4,1,28,28", "--loss",
                 "CrossEntropyLoss", "--labels-file", "ten_classes.npy", "--fix")
    assert (outside / "models.py").read_text() == MODELS.read_text()
    assert "no verified fix maps onto your own source files" in result.stderr


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_sarif_carries_the_patch_as_a_fix(project):
    result = run("check", "models.py:flattened_cnn", "--input", "4,1,28,28", "--loss", "CrossEntropyLoss",
                 "--labels-file", "ten_classes.npy", "--format", "sarif")
    [entry] = json.loads(result.output)["runs"][0]["results"]
    [fix] = entry["fixes"]
    [change] = fix["artifactChanges"]
    assert change["artifactLocation"]["uri"] == "models.py"
    [replacement] = change["replacements"]
    assert "nn.Linear(1568, 10)" in replacement["insertedContent"]["text"]
    assert fix["properties"]["applicability"] == "safe"


def test_fix_diff_without_verification_is_a_usage_error():
    result = run("check", f"{MODELS}:softmax_head", "--input", "8,16", "--fix-diff", "--no-verify-fixes")
    assert result.exit_code == 2 and "verified fixes only" in result.stderr


def _forget_imports():
    for name in [n for n in sys.modules if n.startswith("_shapecheck_target_")]:
        del sys.modules[name]


def _loaded(model):
    from shapecheck import targets
    from shapecheck.adapters import torch as adapter

    return targets.LoadedTarget("in-memory model", model, adapter)


LIBRARY_FACTORIES = {
    "timm_dla.py": ("timm", '''import timm


def build():
    return timm.create_model("dla34", pretrained=False)  # a 1000-way 1x1-conv head
''', ["--input", "8,3,64,64", "--loss", "CrossEntropyLoss", "--labels-file", "five_hot.npy"]),
    "bert.py": ("transformers", '''from transformers import BertConfig, BertForSequenceClassification


def build():
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                        vocab_size=100)
    BertForSequenceClassification(config).save_pretrained("tiny-bert")
    model = BertForSequenceClassification.from_pretrained("tiny-bert")
    return model
''', ["--input", "8,16:int64", "--loss", "CrossEntropyLoss", "--labels-file", "five_hot.npy"]),
    "bert_config.py": ("transformers", '''from transformers import BertConfig, BertForSequenceClassification


def build():
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=37,
                        vocab_size=100)
    return BertForSequenceClassification(config)
''', ["--input", "8,16:int64", "--loss", "CrossEntropyLoss", "--labels-file", "five_hot.npy"]),
    "mobilenet.py": ("keras", '''import keras


def build():
    model = keras.applications.MobileNetV2(weights=None, input_shape=(64, 64, 3))
    model.compile(loss="categorical_crossentropy")
    return model
''', ["--labels-file", "five_hot.npy"]),
}


@pytest.mark.slow   # real library models (MobileNetV2, DLA-34, BERT), each verified and patched
@pytest.mark.parametrize("name", list(LIBRARY_FACTORIES))
@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_library_heads_are_fixed_the_librarys_way(project, name):
    """timm: num_classes at create_model; transformers: num_labels at from_pretrained, or on the config a model is
    built from; keras.applications without weights: classes=. One-hot labels say the class count exactly (5), so
    the fix is safe. The patched file checks clean."""
    library, source, args = LIBRARY_FACTORIES[name]
    pytest.importorskip(library)
    Path(name).write_text(source)
    np.save("five_hot.npy", np.eye(5, dtype=np.float32)[[0, 1, 2, 3, 4, 2, 1, 0]])
    subprocess.run(["git", "add", "."], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", name], check=True)
    report = run("check", f"{name}:build", *args)
    assert "help (verified, safe fix):" in report.output, report.output
    fixed = run("check", f"{name}:build", *args, "--fix")
    assert fixed.exit_code == 0 and "fixed 1 finding" in fixed.stderr, fixed.stderr
    changed = {"timm_dla.py": 'timm.create_model("dla34", pretrained=False, num_classes=5)',
               "bert.py": 'from_pretrained("tiny-bert", num_labels=5, ignore_mismatched_sizes=True)',
               "bert_config.py": "vocab_size=100, num_labels=5)",
               "mobilenet.py": "MobileNetV2(weights=None, input_shape=(64, 64, 3), classes=5)"}[name]
    assert changed in Path(name).read_text()
    _forget_imports()
    after = run("check", f"{name}:build", *args)
    assert after.exit_code == 0, after.output


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_a_reshape_that_folds_the_batch_is_patched_with_the_layer_it_feeds(project):
    args = ("models.py:folded_batch", "--input", "4,1,8,8", "--loss", "CrossEntropyLoss", "--labels-file",
            "ten_classes.npy")
    diff = run("check", *args, "--fix-diff", "--unsafe-fixes").output
    assert "+        x = x.view(x.size(0), -1)" in diff
    assert "+        self.fc = nn.Linear(256, 10)   # sized for a batch of 4 folded into the features" in diff
    assert run("check", *args, "--fix", "--unsafe-fixes").exit_code == 0   # nothing left to fix
    _forget_imports()
    assert run("check", *args).exit_code == 0


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_a_size_passed_down_is_fixed_where_the_caller_chose_it(project):
    """`TagNet(num_tags=10)`: the class stays as written (every `TagNet(num_tags=...)` keeps its own width); the
    call gets the labels' 20 tags. Applying the fix twice equals applying it once."""
    np.save("twenty_tags.npy", (np.arange(80).reshape(4, 20) % 3 == 0).astype(np.float32))
    args = ("models.py:tag_net", "--input", "4,16", "--loss", "BCEWithLogitsLoss", "--labels-file", "twenty_tags.npy")
    [finding] = json_findings(*args)
    assert finding["fixes"][0]["applicability"] == "safe"
    assert finding["fixes"][0]["placed"].endswith("num_tags=20 in the `TagNet(...)` call")
    diff = run("check", *args, "--fix-diff").output
    assert diff.count("\n-") == 1 and "+    return TagNet(num_tags=20)   # the dataset has 20 tags" in diff
    assert run("check", *args, "--fix").exit_code == 0
    once = Path("models.py").read_text()
    assert "self.head = nn.Linear(width * 4, num_tags)" in once
    subprocess.run(["git", "commit", "-qam", "fixed", "--author", "t <t@t>"], check=True,
                   env={**os.environ, "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@t"})
    _forget_imports()
    again = run("check", *args, "--fix")
    assert again.exit_code == 0 and Path("models.py").read_text() == once


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_a_size_from_a_module_constant_is_fixed_at_the_constant(project):
    np.save("five_hot.npy", np.eye(5, dtype=np.float32)[[0, 1, 2, 4]])
    diff = run("check", "models.py:constant_head", "--input", "4,16", "--loss", "CrossEntropyLoss", "--labels-file",
               "five_hot.npy", "--fix-diff").output
    assert "-NUM_CLASSES = 3\n+NUM_CLASSES = 5" in diff


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_a_fix_after_which_a_new_error_appears_is_reverted(project):
    """`num_tags` also sizes the layer that reads the 10 input tags: the verified in-memory fix resized the head
    only, but the call-site edit resizes both, and the re-check after writing reports the input layer."""
    np.save("twenty_tags.npy", (np.arange(80).reshape(4, 20) % 3 == 0).astype(np.float32))
    args = ("models.py:tags_in_and_out", "--input", "4,10", "--loss", "BCEWithLogitsLoss", "--labels-file",
            "twenty_tags.npy")
    result = run("check", *args, "--fix")
    assert "reverted the fixes in models.py" in result.stderr, result.stderr
    assert result.exit_code == 1
    assert Path("models.py").read_text() == MODELS.read_text()


@pytest.mark.subprocess   # the project fixture commits with git; --fix asks git too
def test_a_fix_removes_what_it_made_dead_and_nothing_else(project):
    Path("dead.py").write_text('''import os  # unused before the fix: left alone
import torch.nn.functional as F
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        # softmax gives the loss probabilities
        return F.softmax(self.fc(x), dim=1)  # softmax over the 4 classes


def build():
    return Net()
''')
    subprocess.run(["git", "add", "dead.py"], check=True)
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "dead"], check=True)
    result = run("check", "dead.py:build", "--input", "8,16", "--loss", "CrossEntropyLoss", "--labels", "8", "--fix",
                 "--unsafe-fixes")
    assert result.exit_code == 0, result.stderr
    patched = Path("dead.py").read_text()
    assert "import torch.nn.functional" not in patched and "softmax" not in patched
    assert patched.startswith("import os  # unused before the fix: left alone\nfrom torch import nn\n")
    assert "        return self.fc(x)\n" in patched
