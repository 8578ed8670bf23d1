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


# ------------------------------------------------------------------------------ a model with every weight frozen


def frozen_after_unfreezing() -> keras.Model:
    """`model.trainable = False` on the whole model, then its last layers "unfrozen": the container's flag wins,
    Keras reports no trainable weight and `fit` updates nothing."""
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="base"),
                              keras.layers.Dense(3, activation="softmax", name="head")])
    model.trainable = False
    model.get_layer("head").trainable = True
    return model


def test_a_model_whose_every_weight_is_frozen_trains_nothing():
    model = frozen_after_unfreezing()
    assert model.weights and not model.trainable_weights
    found = run(model, "sparse_categorical_crossentropy", shaped(BATCH, dtype="int64"))
    fit = found.fit
    assert fit is not None and (fit.trainable, fit.steps, fit.samples) == (0, 0, BATCH)
    assert fit.initial == fit.final == pytest.approx(found.head(None).loss_value)
    assert found.unreached is None


def test_a_frozen_model_is_an_error():
    import shapecheck

    report = shapecheck.check(frozen_after_unfreezing(), input=(BATCH, 4), loss="sparse_categorical_crossentropy",
                              labels=np.arange(BATCH) % 3, verify_fixes=False)
    assert [(finding.rule, finding.severity) for finding in report.errors] == [("SC405", "error")]


def test_a_model_without_weights_is_not_a_frozen_one():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Activation("softmax")])
    found = run(model, "categorical_crossentropy", shaped(BATCH, 4))
    assert found.fit is None


# ------------------------------------------------------------------------------ the batch-mixing probe


def siamese(axis: int) -> keras.Model:
    """Two inputs through one projection, each normalised by `tf.math.l2_normalize(axis)`, multiplied: over axis 0
    each sample's vector is divided by a norm taken over the whole batch."""
    keras.utils.set_random_seed(1)
    left, right = keras.Input((8,), name="left"), keras.Input((8,), name="right")
    project = keras.layers.Dense(8, activation="relu", name="project")
    merged = keras.layers.Lambda(lambda pair: tf.math.l2_normalize(pair[0], axis=axis) *
                                 tf.math.l2_normalize(pair[1], axis=axis), name="cosine")([project(left),
                                                                                          project(right)])
    return keras.Model([left, right], keras.layers.Dense(2, activation="softmax", name="same")(merged))


def findings_of(model, inputs, loss: str, labels) -> list:
    import shapecheck

    return shapecheck.check(model, input=inputs, loss=loss, labels=labels, verify_fixes=False).findings


def test_a_normalisation_over_the_batch_axis_mixes_samples():
    findings = findings_of(siamese(0), [(BATCH, 8), (BATCH, 8)], "categorical_crossentropy", (BATCH, 2))
    mixing = [finding for finding in findings if finding.rule == "SC305"]
    assert len(mixing) == 1 and mixing[0].severity == "error" and mixing[0].layer == "cosine"
    assert "`cosine` (Lambda) mixes samples" in mixing[0].message
    assert not any(finding.rule == "SC305" for finding in findings_of(
        siamese(-1), [(BATCH, 8), (BATCH, 8)], "categorical_crossentropy", (BATCH, 2)))


def probe(model, *specs: TensorMeta):
    from shapecheck.adapters import keras as adapter

    return adapter.trace(model, list(specs), "model")


def test_batch_norm_and_dropout_do_not_mix_samples():
    # inference mode: batch normalisation on its moving statistics, dropout off
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(16), keras.layers.BatchNormalization(),
                              keras.layers.ReLU(), keras.layers.Dropout(0.5), keras.layers.Dense(3)])
    weights = [variable.numpy() for variable in model.variables]
    state = np.random.get_state()[1].copy()
    trace = probe(model, TensorMeta((BATCH, 4)))
    assert trace.probe is None and not any("probe" in note for note in trace.notes)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights, model.variables))
    assert np.array_equal(state, np.random.get_state()[1])
    assert not any(finding.rule == "SC305" for finding in findings_of(model, (BATCH, 4), "mse", (BATCH, 3)))


def test_the_probe_names_the_op_that_reduces_over_the_batch():
    keras.utils.set_random_seed(1)
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, name="hidden")(inputs)
    scaled = hidden / keras.ops.sqrt(keras.ops.sum(keras.ops.square(hidden), axis=0, keepdims=True))
    assert probe(keras.Model(inputs, keras.layers.Dense(3)(scaled)), TensorMeta((BATCH, 4))).probe.layer == "sum"


def test_a_time_major_transpose_names_the_recurrent_layer():
    # the transposes only move the samples (the traces at N and N + 1 say to which axis): the LSTM mixes them
    keras.utils.set_random_seed(1)
    model = keras.Sequential([
        keras.Input((5, 3)), keras.layers.Lambda(lambda t: tf.transpose(t, [1, 0, 2]), name="time_major"),
        keras.layers.LSTM(4, return_sequences=True, name="lstm"),
        keras.layers.Lambda(lambda t: tf.transpose(t, [1, 0, 2]), name="batch_major"), keras.layers.Dense(2)])
    assert probe(model, TensorMeta((BATCH, 5, 3))).probe.layer == "lstm"


class _Normalised(keras.Model):
    def __init__(self, axis: int):
        super().__init__()
        self.axis, self.encoder, self.head = axis, keras.layers.Dense(8), keras.layers.Dense(3)

    def call(self, inputs):
        return self.head(tf.math.l2_normalize(self.encoder(inputs), axis=self.axis))


def test_a_subclassed_model_that_mixes_in_its_own_call_is_the_mixing_layer():
    keras.utils.set_random_seed(1)
    trace = probe(_Normalised(0), TensorMeta((BATCH, 4)))
    assert trace.probe is not None and trace.probe.layer is None   # no sublayer mixed: the model's `call` did
    assert probe(_Normalised(-1), TensorMeta((BATCH, 4))).probe is None


def test_a_stateful_rnn_is_probed_at_its_batch_and_keeps_its_states():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input(batch_shape=(BATCH, 5, 3)), keras.layers.LSTM(4, stateful=True),
                              keras.layers.Dense(2)])
    states = [variable.numpy() for variable in model.non_trainable_variables]
    trace = probe(model, TensorMeta((BATCH, 5, 3)))
    assert trace.probe is None and not any("probe" in note for note in trace.notes)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(states, model.non_trainable_variables))


def test_randomness_in_inference_mode_is_not_mixing():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8),
                              keras.layers.Lambda(lambda t: t + tf.random.normal(tf.shape(t)), name="noise"),
                              keras.layers.Dense(3)])
    assert probe(model, TensorMeta((BATCH, 4))).probe is None


def test_model_above_the_parameter_limit_is_not_probed(monkeypatch):
    keras_probe = importlib.import_module("shapecheck.adapters.keras.probe")
    monkeypatch.setattr(keras_probe, "MAX_PARAMETERS", 10)
    trace = probe(siamese(0), TensorMeta((BATCH, 8)), TensorMeta((BATCH, 8)))
    assert trace.probe is None and any(note.startswith("batch-mixing probe skipped:") for note in trace.notes)


def test_a_probe_stopped_by_the_timeout_leaves_the_trace(monkeypatch):
    from shapecheck.deadline import TraceTimeout

    keras_probe = importlib.import_module("shapecheck.adapters.keras.probe")

    def slow(*args):
        raise TraceTimeout(60.0, "model.py:1")

    monkeypatch.setattr(keras_probe, "_run", slow)
    model = siamese(0)
    weights = [variable.numpy() for variable in model.variables]
    trace = probe(model, TensorMeta((BATCH, 8)), TensorMeta((BATCH, 8)))
    assert trace.failure is None and trace.probe is None and trace.output.shape == (BATCH, 2)
    assert any(note.startswith("batch-mixing probe stopped after 60 s") for note in trace.notes)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights, model.variables))
