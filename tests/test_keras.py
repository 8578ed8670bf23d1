"""The Keras adapter: saved files, the compiled loss, build failures, safe loading, no torch import."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")

from click.testing import CliRunner  # noqa: E402

from shapecheck.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

MODELS = "fixtures/keras/models.py"


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_application_model_with_custom_head_is_clean():
    result = run("check", f"{MODELS}:resnet50_custom_head", "--labels", "8", "--format", "json")
    entry = json.loads(result.output)["results"][0]
    assert result.exit_code == 0, result.output
    assert entry["framework"] == "keras" and entry["input_shape"] == [8, 224, 224, 3]   # from the model's Input
    assert entry["output_shape"] == [8, 1] and entry["loss_source"] == "compile config"
    assert len(entry["layers"]) > 170


@pytest.mark.slow   # ResNet50 with its top, and a verified recipe
def test_application_model_with_its_imagenet_top_is_diagnosed():
    result = run("check", f"{MODELS}:resnet50_with_top", "--labels", "8")
    assert result.exit_code == 1
    assert "loss binary_crossentropy(from_logits=False), from the compile config" in result.output
    assert "error[SC101] `binary_crossentropy` input from `predictions` has shape [8, 1000]" in result.output
    # keras.applications' own way: a model built without weights keeps its top, for one class with a sigmoid
    assert 'help (verified, safe fix): Replace the head with 1 output: `keras.applications.ResNet50(weights=None, ' \
        'classes=1, classifier_activation="sigmoid", ...)`' in result.output


@pytest.mark.slow
def test_from_logits_flag_overrides_the_compile_config():
    # asserts on the finding only: proving its recipes (a ResNet50 training step) is left to the other tests
    result = run("check", f"{MODELS}:resnet50_custom_head", "--labels", "8", "--from-logits", "--no-verify-fixes")
    assert result.exit_code == 1 and "SC151" in result.output


def test_build_failure_is_a_finding_on_the_layer_being_built():
    result = run("check", f"{MODELS}:breaks_while_building", "--format", "json")
    assert result.exit_code == 1, result.output
    [finding] = json.loads(result.output)["results"][0]["findings"]
    assert finding["layer"] == "conv" and finding["location"] == {"path": MODELS, "line": 31}
    assert "[None, 4]" in finding["message"]


def test_subclassed_model_layers_are_traced():
    result = run("check", f"{MODELS}:subclassed", "--input", "4,10", "--format", "json")
    layers = json.loads(result.output)["results"][0]["layers"]
    assert [(layer["type"], layer["input_shapes"], layer["output_shape"]) for layer in layers] == [
        ("Dense", [[4, 10]], [4, 16]), ("Dense", [[4, 16]], [4, 3])]


def test_a_saved_keras_file_with_code_is_refused_without_trust(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((4,)), keras.layers.Lambda(lambda t: t * 2), keras.layers.Dense(1)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    refused = run("check", str(path), "--labels", "2")
    assert refused.exit_code == 2 and "--trust" in refused.stderr and "Traceback" not in refused.stderr
    trusted = run("check", str(path), "--labels", "2", "--loss", "mse", "--trust")
    assert trusted.exit_code == 0, trusted.output


def test_a_keras_archive_is_checked_from_its_architecture_without_the_weights(tmp_path):
    """The weights archive is never opened: a .keras file stripped of model.weights.h5 checks the same."""
    import zipfile

    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(1000), keras.layers.Dense(4)])
    model.compile(loss=keras.losses.BinaryCrossentropy(from_logits=True))
    whole = tmp_path / "whole.keras"
    model.save(whole)
    stripped = tmp_path / "stripped.keras"
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(stripped, "w") as target:
        for name in source.namelist():
            if not name.endswith(".h5"):
                target.writestr(name, source.read(name))
    outputs = [run("check", str(path), "--labels", "8") for path in (whole, stripped)]
    assert [o.exit_code for o in outputs] == [1, 1], outputs[1].output
    assert outputs[0].output.replace("whole", "stripped") == outputs[1].output
    assert "binary_crossentropy(from_logits=True), from the compile config" in outputs[1].output


def test_a_file_that_is_not_a_keras_archive_is_a_one_line_error(tmp_path):
    path = tmp_path / "broken.keras"
    path.write_bytes(b"not a zip file")
    result = run("check", str(path), "--labels", "8")
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "not a .keras archive" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_saved_h5_model_reads_its_loss(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy")
    path = tmp_path / "model.h5"
    model.save(path)
    result = run("check", str(path), "--labels", "8,1:int64")
    assert result.exit_code == 0, result.output
    assert "loss sparse_categorical_crossentropy(from_logits=False), from the compile config" in result.output


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("target, unwanted", [
    (f"{MODELS}:subclassed", "torch"),
    ("fixtures/torch/cli_models.py:classifier", "tensorflow"),
])
def test_checking_one_framework_never_imports_the_other(target, unwanted):
    code = (f"import sys; from shapecheck import pipeline; from shapecheck.request import Flags; "
            f"r = pipeline.run(Flags(inputs=['4,10'] if 'keras' in {target!r} else ['4,3,8,8']).request({target!r}));"
            f"assert r.error is None, r.error; print(sorted(m for m in sys.modules if m.split('.')[0] == "
            f"{unwanted!r}))")
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}   # the default TensorFlow backend
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
@pytest.mark.subprocess
def test_a_pytorch_factory_after_a_keras_file_in_one_process():
    """TensorFlow loaded first, then a factory importing torchvision: triton must not load after TensorFlow's native
    modules (that segfaults), whichever import pulls it in."""
    shapecheck = Path(sys.executable).parent / "shapecheck"
    result = subprocess.run([str(shapecheck), "check", "fixtures/keras/binary_head_fixed.keras",
                             "fixtures/torch/resnet50_single_class.py:build_model", "--input", "2,3,64,64",
                             "--labels", "2"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode in (0, 1), result.stderr[-2000:]
    assert "fixtures/torch/resnet50_single_class.py:build_model (input [2, 3, 64, 64]" in result.stdout


def test_an_h5_with_compiled_metrics_loads_and_keeps_its_loss(tmp_path):
    """Keras' own compile of a legacy file fails on the `mse` alias and on a metric wrapping a lambda; the model
    loads uncompiled, the loss comes from the file's training_config, and `--loss` overrides it."""
    import keras

    inputs = keras.Input((8,))
    outputs = keras.layers.Dense(10, name="head")(keras.layers.Dense(16, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    mean_output = keras.metrics.MeanMetricWrapper(fn=lambda y_true, y_pred: y_pred, name="mean_output")
    model.compile(optimizer="adam", loss="mse", metrics=["accuracy", keras.metrics.AUC(), mean_output])
    path = tmp_path / "m.h5"
    with pytest.warns(UserWarning, match="lambda"):
        model.save(path)

    saved = run("check", str(path), "--labels", "4,10")
    assert saved.exit_code == 0, saved.output
    assert "loss mean_squared_error, from the compile config" in saved.output
    given = run("check", str(path), "--loss", "binary_crossentropy", "--labels", "4,1")
    assert given.exit_code == 1, given.output
    assert "error[SC101] `binary_crossentropy` input from `head` has shape [4, 10]" in given.output
