"""The Keras training-signal audit (`shapecheck.adapters.keras.audit`): gradients that stop, outputs that ignore the
input, correct models left clean, and the user's model left as it was."""

from __future__ import annotations

import importlib
import math

import numpy as np
import pytest

pytest.importorskip("keras")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from shapecheck.audit import STEPS, AuditHead  # noqa: E402
from shapecheck.labels import LabelInfo, from_array  # noqa: E402
from shapecheck.losses import resolve_loss  # noqa: E402
from shapecheck.shapes import TensorMeta  # noqa: E402

# the package exports the `audit` function under the module's own name
keras_audit = importlib.import_module("shapecheck.adapters.keras.audit")

BATCH = 8


def shaped(*shape: int, dtype: str = "float32") -> LabelInfo:
    """Labels known by shape only: the audit makes valid stand-ins."""
    return LabelInfo(TensorMeta(shape, dtype), "spec")


def run(model, loss: str, labels: LabelInfo, inputs: tuple[int, ...] = (BATCH, 4), from_logits: bool | None = None,
        output: str | None = None):
    head = AuditHead(output, resolve_loss(loss, "keras", from_logits=from_logits), labels)
    found, note = keras_audit.audit(model, [TensorMeta(inputs)], None, [head])
    assert found is not None, note
    return found


def one_unit_softmax() -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, activation="softmax", name="head")(hidden))


def detached_encoder(stop) -> keras.Model:
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    encoded = keras.layers.Dense(8, name="encoder")(inputs)
    frozen = keras.layers.Lambda(stop, name="frozen")(encoded)
    return keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="head")(frozen))


def test_softmax_over_one_unit_gives_a_constant_output():
    found = run(one_unit_softmax(), "binary_crossentropy", shaped(BATCH, 1))
    constant = found.head(None).constant
    assert constant is not None and constant.value_range == pytest.approx((1.0, 1.0))
    assert (constant.op, constant.layer) == ("softmax", "head")
    # Keras' binary cross-entropy computes from the logits the softmax kept (`_keras_logits`), as `fit` does:
    # the gradient reaches every layer, only the predictions are constant
    assert found.unreached is None
    assert found.head(None).loss_value is not None and found.samples == BATCH


def test_softmax_over_one_unit_leaves_every_layer_without_gradient():
    found = run(one_unit_softmax(), "categorical_crossentropy", shaped(BATCH, 1))
    unreached = found.unreached
    assert unreached is not None and unreached.layers == ("hidden", "head")
    assert unreached.values == unreached.total == 4 * 8 + 8 + 8 + 1 and unreached.steps == STEPS
    stop = unreached.stop
    assert (stop.op, stop.spelling, stop.layer, stop.shape) == ("softmax", "Dense", "head", (BATCH, 8))
    assert found.head(None).constant is not None and found.head(None).loss_value == pytest.approx(0.0)


@pytest.mark.parametrize("stop", [lambda t: tf.stop_gradient(t), lambda t: keras.ops.stop_gradient(t)],
                         ids=["tf", "keras.ops"])
def test_stop_gradient_leaves_the_encoder_without_gradient(stop):
    found = run(detached_encoder(stop), "sparse_categorical_crossentropy", shaped(BATCH, dtype="int64"))
    unreached = found.unreached
    assert unreached is not None and unreached.layers == ("encoder",)
    assert (unreached.values, unreached.total) == (4 * 8 + 8, 4 * 8 + 8 + 8 * 3 + 3)
    stop_at = unreached.stop
    assert (stop_at.op, stop_at.spelling, stop_at.layer, stop_at.shape) == ("stop_gradient", "Lambda", "frozen",
                                                                            (BATCH, 8))
    assert found.head(None).constant is None   # the head's own weights still see the input


def test_softmax_classifier_is_clean():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    found = run(model, "sparse_categorical_crossentropy", from_array(np.arange(BATCH) % 10, "labels.npy"))
    head = found.head(None)
    assert found.unreached is None and head.constant is None and head.labels_real
    assert head.values.classes == 10 and head.values.are_probabilities
    assert head.loss_value == pytest.approx(math.log(10), rel=0.2)


def test_dropout_and_batch_norm_are_clean():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16), keras.layers.BatchNormalization(),
                              keras.layers.ReLU(), keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    found = run(model, "categorical_crossentropy", shaped(BATCH, 3), from_logits=True)
    assert found.unreached is None and found.head(None).constant is None


def test_zero_initialised_last_layer_is_not_reported():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10, kernel_initializer="zeros")])
    found = run(model, "sparse_categorical_crossentropy", shaped(BATCH, dtype="int64"), from_logits=True)
    head = found.head(None)
    assert found.unreached is None and head.constant is None   # the hidden layer's gradient comes after one step
    assert head.loss_value == pytest.approx(math.log(10))


@pytest.mark.slow   # a real MobileNetV2, and its trained copy: about 7 s
def test_mobilenet_is_clean():
    # at initialisation, on its moving statistics, the output is uniform whatever the input: the trained copy,
    # its batch normalisation on the batch's statistics, shows it is not
    keras.utils.set_random_seed(1)
    model = keras.applications.MobileNetV2(weights=None, input_shape=(32, 32, 3), classes=10)
    found = run(model, "categorical_crossentropy", shaped(BATCH, 10), inputs=(BATCH, 32, 32, 3))
    assert found.unreached is None and found.head(None).constant is None


def test_auxiliary_output_without_a_loss_is_not_reported():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    main = keras.layers.Dense(3, name="main")(keras.layers.Dense(8, activation="relu", name="trunk")(inputs))
    aux = keras.layers.Dense(2, name="aux")(keras.layers.Dense(5, name="aux_hidden")(inputs))
    found = run(keras.Model(inputs, [main, aux]), "mean_squared_error", shaped(BATCH, 3), output="main")
    assert found.unreached is None and set(found.heads) == {"main"}
    assert found.head("main").values.classes == 3


def test_the_users_model_is_left_as_it_was():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    normalised = keras.layers.BatchNormalization(name="norm")(keras.layers.Dense(8, name="encoder")(inputs))
    frozen = keras.layers.Lambda(lambda t: tf.stop_gradient(t), name="frozen")(normalised)
    model = keras.Model(inputs, keras.layers.Dense(3, name="head")(frozen))
    model.compile(optimizer="sgd", loss="mse")
    loss, optimizer, weights = model.loss, model.optimizer, model.get_weights()
    found = run(model, "mean_squared_error", shaped(BATCH, 3))
    assert found.unreached is not None and found.unreached.layers == ("encoder", "norm")   # a trained copy ran
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert (model.loss, model.optimizer, int(model.optimizer.iterations)) == (loss, optimizer, 0)
    assert model.get_layer("norm").momentum == pytest.approx(0.99)


def test_model_above_the_parameter_limit_is_skipped(monkeypatch):
    monkeypatch.setattr(keras_audit, "MAX_PARAMETERS", 10)
    head = AuditHead(None, resolve_loss("binary_crossentropy", "keras"), shaped(BATCH, 1))
    found, note = keras_audit.audit(one_unit_softmax(), [TensorMeta((BATCH, 4))], None, [head])
    assert found is None and note.startswith("training-signal audit skipped:") and "parameters" in note
