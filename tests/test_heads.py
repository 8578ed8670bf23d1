"""Several heads per check: each output paired with its own loss and labels, checked as a head of its own; outputs
left unpaired are named in a note."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from shapecheck import heads
from shapecheck import labels as labels_mod
from shapecheck.cli import main
from shapecheck.errors import ShapecheckError
from shapecheck.losses import resolve_loss
from shapecheck.request import Flags, Head
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Trace


def _trace(framework: str = "keras", **outputs: tuple[int, ...]) -> Trace:
    metas = {name: TensorMeta(shape) for name, shape in outputs.items()}
    return Trace("model.py:build", framework, [TensorMeta((8, 16))], outputs=metas,
                 output_ops={name: None for name in metas}, output_path=next(iter(metas)))


def _plan(trace, heads_given, compiled=None):
    def loss_of(head):
        return resolve_loss(head.loss, trace.framework) if head.loss else None

    def labels_of(head, loss):
        return head.labels
    return heads.plan(tuple(heads_given), trace, compiled or {}, loss_of, labels_of)


def test_compiled_losses_pair_with_labels_keyed_by_output():
    trace = _trace(age=(8, 1), gender=(8, 1))
    labels = {"age": labels_mod.from_array(np.ones(8, "float32"), "l"),
              "gender": labels_mod.from_array(np.ones((8, 1), "float32"), "l")}
    compiled = {"age": resolve_loss("mse", "keras"), "gender": resolve_loss("binary_crossentropy", "keras")}
    checks, notes = _plan(trace, [Head(labels=labels)], compiled)
    assert [(c.name, c.loss.name, c.labels.shape) for c in checks] == [
        ("age", "mean_squared_error", (8,)), ("gender", "binary_crossentropy", (8, 1))]
    assert all(c.labels.per_output == 2 for c in checks) and not notes


def test_a_named_head_and_an_unpaired_output():
    trace = _trace("torch", **{"['out']": (2, 5, 16, 16), "['aux']": (2, 5, 16, 16)})
    checks, notes = _plan(trace, [Head(output="out", loss="CrossEntropyLoss",
                                       labels=labels_mod.from_array(np.zeros((2, 16, 16), "int64"), "l"))])
    assert [(c.output, c.name) for c in checks] == [("['out']", "out")]
    assert notes == ["output `aux` [2, 5, 16, 16] was not checked against a loss: name it to check it "
                     "(`--loss aux=LOSS --labels aux=SHAPE`)"]


def test_an_unknown_output_names_the_real_ones():
    with pytest.raises(ShapecheckError, match="no output `gendr`; its outputs: `age`, `gender`"):
        _plan(_trace(age=(8, 1), gender=(8, 1)), [Head(output="gendr", loss="mse")])


def test_labels_for_an_output_the_model_lacks_are_an_error():
    labels = {"age": labels_mod.from_array(np.ones(8), "l"), "height": labels_mod.from_array(np.ones(8), "l")}
    with pytest.raises(ShapecheckError, match="labels for `height`, which the model does not output"):
        _plan(_trace(age=(8, 1), gender=(8, 1)), [Head(loss="mse", labels=labels)])


def test_a_stack_of_one_array_per_output_is_split():
    trace = _trace(age=(8, 1), gender=(8, 1))
    stack = labels_mod.from_array(np.ones((2, 8, 1), "float32"), "l")
    checks, _ = _plan(trace, [Head(loss="mse", labels=stack)])
    assert [(c.name, c.labels.shape) for c in checks] == [("age", (8, 1)), ("gender", (8, 1))]


def test_one_output_one_head_as_before():
    checks, notes = _plan(_trace("torch", **{"": (8, 10)}), [Head(loss="CrossEntropyLoss")])
    assert [(c.output, c.name) for c in checks] == [("", "")] and not notes


@pytest.mark.parametrize(("flags", "expected"), [
    (Flags(loss="mse", labels="8"), [(None, "mse")]),
    (Flags(loss=("age=mse", "gender=binary_crossentropy"), labels=("age=8", "gender=8,1")),
     [("age", "mse"), ("gender", "binary_crossentropy")]),
    (Flags(loss=("mse", "gender=binary_crossentropy")), [(None, "mse"), ("gender", "binary_crossentropy")]),
])
def test_flags_name_heads_with_output_equals(flags, expected):
    assert [(head.output, head.loss) for head in flags.heads()] == expected


@pytest.mark.parametrize(("flags", "message"), [
    (Flags(loss=("age=mse", "age=mae")), "--loss is given twice for output `age`"),
    (Flags(loss=("=mse",)), "invalid --loss `=mse`: expected OUTPUT=VALUE"),
    (Flags(labels=("age=8",), labels_file=("age=x.npy",)), "give either --labels or --labels-file, not both"),
])
def test_flags_refuse_ambiguous_heads(flags, message):
    with pytest.raises(ShapecheckError, match=message):
        flags.heads()


KERAS_MODEL = '''
import keras
from keras import layers


def build(gender_units=1):
    x = keras.Input((16,), name="features")
    h = layers.Dense(8, activation="relu")(x)
    age = layers.Dense(1, name="age")(h)
    gender = layers.Dense(gender_units, activation="sigmoid", name="gender")(h)
    model = keras.Model(x, {"age": age, "gender": gender})
    model.compile(loss={"age": "mse", "gender": "binary_crossentropy"})
    return model


def wrong_gender_head():
    return build(3)
'''


@pytest.fixture
def keras_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(KERAS_MODEL)
    np.savez(tmp_path / "labels.npz", age=np.linspace(20, 60, 8).astype("float32"),
             gender=(np.arange(8) % 2).reshape(8, 1).astype("float32"))
    return tmp_path


@pytest.mark.slow
def test_keras_outputs_checked_with_their_compiled_losses_and_keyed_labels(keras_project):
    runner = CliRunner()
    clean = runner.invoke(main, ["check", "model.py:build", "--input", "8,16", "--labels-file", "labels.npz",
                                 "--no-verify-fixes"])
    assert clean.exit_code == 0, clean.output
    assert "head `age`: output [8, 1]; loss mean_squared_error, from the compile config; labels [8] float32" \
        in clean.output
    wrong = runner.invoke(main, ["check", "model.py:wrong_gender_head", "--input", "8,16", "--labels-file",
                                 "labels.npz", "--no-verify-fixes", "--format", "json"])
    assert wrong.exit_code == 1, wrong.output
    [result] = json.loads(wrong.output)["results"]
    assert [(f["rule"], f["head"]) for f in result["findings"]] == [("SC101", "gender")]
    assert [head["name"] for head in result["heads"]] == ["age", "gender"]


TORCH_MODEL = '''
from torch import nn


class Seg(nn.Module):
    def __init__(self, aux_classes=5):
        super().__init__()
        self.body = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 5, 1)
        self.aux = nn.Conv2d(8, aux_classes, 1)

    def forward(self, x):
        h = self.body(x)
        return {"out": self.head(h), "aux": self.aux(h)}


def seg():
    return Seg()


def wrong_aux():
    return Seg(aux_classes=1000)
'''


@pytest.mark.slow
def test_torch_dict_outputs_are_heads_and_the_unnamed_one_is_noted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(TORCH_MODEL)
    np.save(tmp_path / "aux.npy", np.arange(2 * 16 * 16).reshape(2, 16, 16) % 5)
    runner = CliRunner()
    main_only = runner.invoke(main, ["check", "model.py:seg", "--input", "2,3,16,16", "--loss", "CrossEntropyLoss",
                                     "--labels", "2,16,16", "--no-verify-fixes"])
    assert main_only.exit_code == 0, main_only.output
    assert "note: output `aux` [2, 5, 16, 16] was not checked against a loss" in main_only.output
    both = runner.invoke(main, ["check", "model.py:wrong_aux", "--input", "2,3,16,16", "--loss", "out=CrossEntropyLoss",
                                "--labels", "out=2,16,16", "--loss", "aux=CrossEntropyLoss", "--labels-file",
                                "aux=aux.npy", "--no-verify-fixes"])
    assert both.exit_code == 1, both.output
    assert "error[SC108] (output `aux`) `CrossEntropyLoss` input has 1000 classes" in both.output
    unknown = runner.invoke(main, ["check", "model.py:seg", "--input", "2,3,16,16", "--loss", "outt=CrossEntropyLoss"])
    assert unknown.exit_code == 2 and "no output `outt`; its outputs: `out`, `aux`" in unknown.stderr


FIT_SCRIPT = '''
import numpy as np
import model

net = model.wrong_gender_head()
x = np.random.rand(16, 16).astype("float32")
age, gender = np.linspace(20, 60, 16).astype("float32"), (np.arange(16) % 2).reshape(16, 1).astype("float32")
net.fit(x, LABELS, batch_size=8, epochs=1, verbose=0)
'''


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("labels", ['{"age": age, "gender": gender}', "[age, gender]"])
def test_run_checks_each_output_keras_fit_is_given(keras_project, labels):
    import subprocess
    import sys

    (keras_project / "train.py").write_text(FIT_SCRIPT.replace("LABELS", labels))
    done = subprocess.run([sys.executable, "-m", "shapecheck", "run", "--no-verify-fixes", "--format", "json",
                           "train.py"], capture_output=True, text=True, cwd=keras_project)
    assert done.returncode == 1, done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert [(f["rule"], f["head"]) for f in result["findings"]] == [("SC101", "gender")]


@pytest.mark.slow
def test_what_was_not_checked_is_said_in_every_format(tmp_path, monkeypatch):
    """No loss, labels given only as a shape: a note in text, JSON, SARIF and the Python API's report."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text("from torch import nn\n\n\ndef build():\n    return nn.Linear(4, 3)\n")
    runner = CliRunner()
    text = runner.invoke(main, ["check", "model.py:build", "--input", "2,4"]).output
    assert "note: no loss given: only the layer and batch checks ran" in text
    shape_only = ["check", "model.py:build", "--input", "2,4", "--loss", "CrossEntropyLoss", "--labels", "2",
                  "--no-verify-fixes"]
    [result] = json.loads(runner.invoke(main, [*shape_only, "--format", "json"]).output)["results"]
    assert any(note.startswith("labels given as a shape") for note in result["notes"])
    sarif = json.loads(runner.invoke(main, [*shape_only, "--format", "sarif"]).output)
    [invocation] = sarif["runs"][0]["invocations"]
    assert any("labels given as a shape" in n["message"]["text"] and n["level"] == "note"
               for n in invocation["toolExecutionNotifications"])
    from torch import nn

    import shapecheck
    report = shapecheck.check(nn.Linear(4, 3), input=(2, 4), loss="CrossEntropyLoss", labels=np.array([0, 2]),
                              verify_fixes=False)
    assert not any("labels given as a shape" in note for note in report.notes)


@pytest.mark.slow
@pytest.mark.subprocess
def test_run_checks_every_loss_of_a_multi_task_step():
    """Two criterion calls on a dict output: each is a head with its real loss and labels; the step stops before
    its optimiser step."""
    import subprocess
    import sys

    from rule_fixtures import ROOT

    done = subprocess.run([sys.executable, "-m", "shapecheck", "run", "--no-verify-fixes", "--format", "json",
                           "fixtures/scripts/multitask_weight_head.py"], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 1, done.stderr
    assert "STEPPED" not in done.stdout + done.stderr
    [result] = json.loads(done.stdout)["results"]
    assert [(h["name"], h["loss"], h["labels"]["shape"]) for h in result["heads"]] == [
        ("species", "CrossEntropyLoss", [8]), ("weight", "MSELoss", [8, 1])]
    assert [(f["rule"], f["head"]) for f in result["findings"]] == [("SC101", "weight")]


def test_configured_targets_pair_a_loss_and_labels_with_each_output(tmp_path, monkeypatch):
    from shapecheck import config, request

    monkeypatch.chdir(tmp_path)
    (tmp_path / "pyproject.toml").write_text('''
[[tool.shapecheck.targets]]
target = "model.py:build"
input = [8, 16]
loss = { age = "mse", gender = "binary_crossentropy" }
labels = { age = "8", gender = "8,1" }
''')
    [planned] = request.plan([], Flags(), config.load(tmp_path / "pyproject.toml"))
    assert [(head.output, head.loss, head.labels.shape) for head in planned.heads] == [
        ("age", "mse", (8,)), ("gender", "binary_crossentropy", (8, 1))]
