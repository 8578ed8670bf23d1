"""The training-signal audit of a Keras 3 model (`shapecheck.audit`) on the TensorFlow backend: a real forward and
backward pass on a tiny seeded batch, in training mode as `fit` computes it (batch normalisation on the batch's
statistics: on its initial moving statistics, an untrained deep model's signal can vanish to a constant output).

Whatever looks wrong at initialisation (variables with no gradient, an output that ignores the input) is measured
again on a clone after a few Adam steps: a deliberately zero-initialised layer gets its gradient after one step, a
`stop_gradient` never does. The user's model is left as it was: its weights (batch normalisation's moving
statistics, which training-mode passes move, are restored) and its compile state.

The losses are the `keras.losses` classes `compile()` would use, with their quirks: a cross-entropy given the output
of a softmax or sigmoid activation computes from the logits that activation kept, as a real `fit` does.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from shapecheck.adapters.keras.edit import MAX_PARAMETERS
from shapecheck.adapters.keras.loss import CLASSES
from shapecheck.adapters.keras.tracer import activation_name, attribute_names, error_line, inner_layer, tensors_in
from shapecheck.audit import (
    MAX_SAMPLES,
    STEPS,
    Audit,
    AuditHead,
    Constant,
    Fit,
    HeadAudit,
    OutputValues,
    Stop,
    Unreached,
    audit_labels,
    stand_in_kind,
)
from shapecheck.ops import canonical
from shapecheck.shapes import TensorMeta

# what a Lambda's code calls that has no gradient, or stops it: its name for the op, before any activation it calls
_LAMBDA_STOPS = ("stop_gradient", "argmax", "argmin", "round", "floor", "ceil", "sign", "cast")


def audit(model: keras.Model, specs: list[TensorMeta], example, heads: Sequence[AuditHead]
          ) -> tuple[Audit | None, str]:
    """The audit's measurements, or None and a note saying why it did not run (`example` is always None: the
    Keras adapter takes shapes only)."""
    count = sum(math.prod(variable.shape) for variable in model.weights)
    if count > MAX_PARAMETERS:
        return None, f"training-signal audit skipped: {count / 1e6:.0f}M parameters (limit " \
                     f"{MAX_PARAMETERS // 10**6}M)"
    if keras.backend.backend() != "tensorflow":
        return None, f"training-signal audit skipped: it runs on the TensorFlow backend, not {keras.backend.backend()}"
    started = time.perf_counter()
    moving = [(variable, variable.numpy()) for variable in model.non_trainable_variables]   # training passes move them
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            keras.utils.set_random_seed(0)
            inputs, full, batch = _inputs(specs)
            found = _measure(model, inputs, full, batch, heads)
    except Exception as exc:   # best effort: the static checks already ran
        return None, f"training-signal audit skipped: running the model for real raised {type(exc).__name__}"
    finally:
        for variable, value in moving:
            variable.assign(value)
    found.samples, found.seconds = batch, time.perf_counter() - started
    return found, ""


def _inputs(specs: list[TensorMeta]) -> tuple[list[tf.Tensor], int, int]:
    full = specs[0].shape[0]
    batch = min(full, MAX_SAMPLES)
    return made_up_inputs(specs, batch), full, batch


def made_up_inputs(specs: list[TensorMeta], batch: int, seed: int = 0) -> list[tf.Tensor]:
    """Seeded values for `batch` samples of each input (a generator of their own: the global RNGs are left
    alone): standard-normal floats, 0/1 for integer (ids, masks) and boolean inputs."""
    generator = np.random.default_rng(seed)
    inputs = []
    for spec in specs:
        shape = (batch, *spec.shape[1:])
        values = generator.standard_normal(shape, dtype=np.float32) if "float" in spec.dtype else \
            generator.integers(0, 2, shape)
        inputs.append(tf.cast(values, spec.dtype))
    return inputs


def _measure(model: keras.Model, inputs: list[tf.Tensor], full: int, batch: int,
             heads: Sequence[AuditHead]) -> Audit:
    with tf.GradientTape() as tape:
        recorder = LayerByLayer(tape)
        outputs = _forward(model, inputs, recorder)
        predictions = {_key(head): _prediction(outputs, head) for head in heads}
        labels = {_key(head): _labels(head, predictions[_key(head)], full, batch) for head in heads}
        total = _total_loss(outputs, heads, labels)
    found = Audit(heads={_key(head): _head_audit(head, predictions[_key(head)], labels[_key(head)])
                         for head in heads})
    variables, watched = _trainable(model), recorder.watched   # after the pass that builds an unbuilt model
    if not variables and any(math.prod(variable.shape) for variable in model.weights):
        # weights, every one frozen (`trainable = False` on the model or on a container of them wins over the
        # flags of the layers inside): the step trains nothing, as torch's audit reports a model whose every
        # parameter has `requires_grad=False`
        losses = [head.loss_value for head in found.heads.values() if head.loss_value is not None]
        found.fit = Fit(batch, 0, sum(losses), sum(losses), 0) if losses else None
        return found
    if total is None:
        return found
    gradients = tape.gradient(total, [*variables, *watched])
    silent = {index for index, gradient in enumerate(gradients[:len(variables)]) if not _has_gradient(gradient)}
    reached = {id(tensor) for tensor, gradient in zip(watched, gradients[len(variables):]) if _has_gradient(gradient)}
    constant = _ignoring_input(model, inputs, heads, batch)
    if not silent and not constant:
        return found
    trained, counterparts, silent = _trained_copy(model, inputs, heads, labels, silent)
    silent -= _reaching_other_outputs(trained, counterparts, inputs, heads, silent)
    if silent:
        owners = _owners(model, recorder)
        read = {id(prediction) for prediction in predictions.values() if prediction is not None}
        found.unreached = Unreached(
            layers=tuple(dict.fromkeys(owners.get(id(variables[index]), "") for index in sorted(silent))),
            values=sum(math.prod(variables[index].shape) for index in silent),
            total=sum(math.prod(variable.shape) for variable in variables), steps=STEPS,
            stop=recorder.stop(reached, read))
    for head in _ignoring_input(trained, inputs, constant, batch):
        found.heads[_key(head)] = _with_constant(found.heads[_key(head)], model, inputs, head)
    return found


def _key(head: AuditHead) -> str:
    return head.output or ""


def _trainable(model: keras.Model) -> list:
    """The trainable variables that hold values: frozen ones are never the audit's."""
    return [variable for variable in model.trainable_variables if math.prod(variable.shape)]


def functional_graph(model):
    """The graph a functional or Sequential model runs through, None for a subclassed model's Python `call`."""
    return model if hasattr(model, "_run_through_graph") else getattr(model, "_functional", None)


def _forward(model: keras.Model, inputs: list[tf.Tensor], recorder: LayerByLayer | None = None
             ) -> dict[str, tf.Tensor]:
    """The model's outputs in training mode, keyed as the tracer keys `Trace.outputs` ("" for the only one)."""
    graph = functional_graph(model)
    if graph is not None:
        output = (recorder or LayerByLayer()).run(graph, inputs)
    else:
        output = model(inputs if len(inputs) > 1 else inputs[0], training=True)
    leaves = tensors_in(output)
    names = list(getattr(model, "output_names", None) or [])
    names = names if len(names) == len(leaves) else [f"[{index}]" for index in range(len(leaves))]
    return {name if len(leaves) > 1 else "": tensor for name, tensor in zip(names, leaves)}


def _prediction(outputs: dict[str, tf.Tensor], head: AuditHead) -> tf.Tensor | None:
    path = head.output if head.output in outputs else next(iter(outputs), None)
    return outputs.get(path) if path is not None else None


def _labels(head: AuditHead, prediction: tf.Tensor | None, full: int, batch: int) -> tuple[np.ndarray | None, bool]:
    """The user's labels for the audit's samples (the first `batch` of the check's `full`), else valid stand-ins the
    loss accepts; and whether they are the user's."""
    shape, per_sample = audit_labels(head.labels, full, batch)
    if head.labels.array is not None:
        values = np.asarray(head.labels.array)
        return (values[:batch] if per_sample else values), True
    if prediction is None or not shape:
        return None, False
    generator = np.random.default_rng(0)
    axis = head.loss.class_axis
    classes = prediction.shape[axis] if prediction.shape.rank > 1 else 2
    kind = stand_in_kind(head.loss)
    if kind == "class_ids":
        return generator.integers(0, classes, shape), False
    if kind == "distribution":   # distributions over the classes, like the output
        scores = np.exp(generator.standard_normal(tuple(prediction.shape)))
        return (scores / scores.sum(axis=axis, keepdims=True)).astype(np.float32), False
    if kind == "binary":
        return generator.integers(0, 2, shape).astype(np.float32), False
    return generator.standard_normal(shape, dtype=np.float32), False


def _loss_function(head: AuditHead) -> keras.losses.Loss | None:
    """The `keras.losses` object `compile()` would build for the head's loss (as `edit.train_step` builds it)."""
    loss_class = getattr(keras.losses, CLASSES.get(head.loss.name, ""), None)
    if loss_class is None or head.loss.framework != "keras":
        return None
    arguments = {"from_logits": head.loss.from_logits} if head.loss.from_logits is not None else {}
    arguments.update(dict(head.loss.options))
    return loss_class(**arguments)


def _head_audit(head: AuditHead, prediction: tf.Tensor | None, labels: tuple[np.ndarray | None, bool]) -> HeadAudit:
    if prediction is None:
        return HeadAudit()
    values = _output_values(prediction, head)
    target, real = labels
    function = _loss_function(head)
    if function is None or target is None:
        return HeadAudit(values=values)
    try:
        value = float(function(target, prediction))
    except Exception as exc:
        return HeadAudit(values=values, loss_error=f"{type(exc).__name__}: {error_line(exc)}", labels_real=real)
    return HeadAudit(values=values, loss_value=value, labels_real=real)


def _output_values(prediction: tf.Tensor, head: AuditHead) -> OutputValues:
    values = np.asarray(prediction, dtype=np.float32)
    if not values.size:
        return OutputValues(0.0, 0.0, 0)
    low, high, zeros = float(values.min()), float(values.max()), float((values == 0).mean())
    if values.ndim < 2:
        return OutputValues(low, high, 1, zeros=zeros)
    axis = head.loss.class_axis
    sums, exp_sums = values.sum(axis), np.exp(values).sum(axis)
    return OutputValues(low, high, values.shape[axis], (float(sums.min()), float(sums.max())),
                        (float(exp_sums.min()), float(exp_sums.max())), zeros)


def _total_loss(outputs: dict[str, tf.Tensor], heads: Sequence[AuditHead], labels: dict) -> tf.Tensor | None:
    """The sum of the heads' losses that compute and are finite: what a training step would backpropagate."""
    total = None
    for head in heads:
        prediction, function = _prediction(outputs, head), _loss_function(head)
        target = labels[_key(head)][0]
        if prediction is None or function is None or target is None or not prediction.dtype.is_floating:
            continue
        try:
            value = function(target, prediction)
        except Exception:
            continue
        if bool(tf.math.is_finite(value)):
            total = value if total is None else total + value
    return total


def _has_gradient(gradient) -> bool:
    if isinstance(gradient, tf.IndexedSlices):   # an embedding's gradient: only the rows looked up
        gradient = gradient.values
    return gradient is not None and bool(np.any(np.asarray(gradient) != 0))


class LayerByLayer:
    """A functional model's pass layer by layer, as the tracer runs it (nested models entered, their layers named
    `outer.inner`): each layer with its input and output tensors. With a tape, every float output is watched, so
    that the gradient reaching it can be read after the backward pass. Layers that take `training` get `training`
    (True: as `fit` runs them; False: inference, as the batch-mixing probe runs them)."""

    def __init__(self, tape: tf.GradientTape | None = None, training: bool = True):
        self.tape, self.training = tape, training
        self.calls: list[tuple[str, keras.layers.Layer, list, list]] = []

    def run(self, graph, inputs: list, prefix: str = ""):
        return graph._run_through_graph(inputs, operation_fn=lambda operation: self._wrap(operation, prefix))

    def _wrap(self, operation, prefix: str):
        name = prefix + operation.name

        def call(*args, **kwargs):
            graph = functional_graph(operation) if isinstance(operation, keras.Model) else None
            if graph is not None:
                return self.run(graph, tensors_in(args), name + ".")
            if "training" in getattr(operation, "_call_context_args", ()):
                kwargs["training"] = self.training   # as `Functional.call(training=...)` passes it to every layer
            outputs = operation(*args, **kwargs)
            produced = tensors_in(outputs)
            if self.tape is not None:
                self.tape.watch([tensor for tensor in produced if tensor.dtype.is_floating])
            self.calls.append((name, operation, tensors_in((args, kwargs)), produced))
            return outputs

        return call

    @property
    def watched(self) -> list[tf.Tensor]:
        return [tensor for _, _, _, outputs in self.calls for tensor in outputs if tensor.dtype.is_floating]

    def stop(self, reached: set[int], read: set[int]) -> Stop | None:
        """The first layer an input of which needs a gradient (it depends on a trainable variable) and gets none,
        while its output gets one or is what a loss reads: a cross-entropy reads the logits a softmax kept, not
        the softmax's output."""
        needs: set[int] = set()
        for name, layer, inputs, outputs in self.calls:
            silent = [tensor for tensor in inputs if id(tensor) in needs and id(tensor) not in reached]
            if silent and any(id(tensor) in reached or id(tensor) in read for tensor in outputs):
                return Stop(canonical(_op_name(layer)), type(layer).__name__, name, tuple(silent[0].shape))
            if _trainable(layer) or any(id(tensor) in needs for tensor in inputs):
                needs.update(id(tensor) for tensor in outputs)
        return None


def _op_name(layer) -> str:
    """What a layer computes, for a message: its activation when it has one, what its Lambda code calls, else its
    lower-cased class."""
    inner = inner_layer(layer)
    if isinstance(inner, keras.layers.Lambda):
        code = getattr(inner.function, "__code__", None)
        called = code.co_names if code is not None else ()
        stop = next((name for name in _LAMBDA_STOPS if name in called), None)
        return stop or activation_name(layer) or "lambda"
    return activation_name(layer) or type(inner).__name__.lower()


def _owners(model: keras.Model, recorder: LayerByLayer) -> dict[int, str]:
    """Each trainable variable's layer, named as the tracer names it: a functional model's layers as they ran, a
    subclassed model's sublayers by the attribute that holds them."""
    if recorder.calls:
        layers = [(name, layer) for name, layer, _, _ in recorder.calls]
    else:
        attributes = attribute_names(model)
        layers = [(attributes.get(id(layer), layer.name), layer) for layer in model.layers]
    owners: dict[int, str] = {}
    for name, layer in layers:
        for variable in layer.trainable_variables:
            owners.setdefault(id(variable), name)
    return owners


def _copy_layer(layer):
    """A new layer configured as `layer`; a Lambda keeps its function object (a round trip through its bytecode
    loses the globals its code names, `tf` or `keras`)."""
    if isinstance(layer, keras.layers.Lambda):
        return keras.layers.Lambda(layer.function, output_shape=layer._output_shape, mask=layer.mask,
                                   arguments=layer.arguments, name=layer.name, dtype=layer.dtype_policy)
    return layer.__class__.from_config(layer.get_config())


def _clone(model: keras.Model, inputs: list[tf.Tensor]) -> keras.Model:
    """A copy of the model with variables of its own, holding the model's weights."""
    if functional_graph(model) is not None:
        clone = keras.models.clone_model(model, clone_function=_copy_layer, recursive=True)
    else:
        clone = keras.models.clone_model(model)   # a subclassed model, rebuilt from its config
    _forward(clone, inputs)   # builds the variables of a model that creates them on its first call
    clone.set_weights(model.get_weights())
    return clone


def _counterparts(model: keras.Model, clone: keras.Model) -> list:
    """The clone's variables matching the model's trainable ones, by position in `weights` (the order
    `set_weights` copies in): a clone need not keep a nested model's `trainable` flag."""
    position = {id(variable): index for index, variable in enumerate(model.weights)}
    return [clone.weights[position[id(variable)]] for variable in _trainable(model)]


def _trained_copy(model: keras.Model, inputs: list[tf.Tensor], heads: Sequence[AuditHead], labels: dict,
                  silent: set[int]) -> tuple[keras.Model, list, set[int]]:
    """A clone trained `STEPS` seeded Adam steps on the audit's batch; its
    variables matching the model's trainable ones; and `silent` narrowed to those that still get no gradient after
    every step."""
    keras.utils.set_random_seed(0)
    clone = _clone(model, inputs)
    variables = _counterparts(model, clone)
    optimizer = keras.optimizers.Adam(learning_rate=1e-3)
    for step in range(STEPS + 1):   # measured before each step and after the last
        with tf.GradientTape() as tape:
            total = _total_loss(_forward(clone, inputs), heads, labels)
        if total is None:
            break
        gradients = tape.gradient(total, variables)
        silent = {index for index in silent if not _has_gradient(gradients[index])}
        if step == STEPS:
            break
        optimizer.apply_gradients([(keras.ops.zeros_like(variable) if gradient is None else gradient, variable)
                                   for gradient, variable in zip(gradients, variables)])
    return clone, variables, silent


def _reaching_other_outputs(model: keras.Model, variables: list, inputs: list[tf.Tensor], heads: Sequence[AuditHead],
                            silent: set[int]) -> set[int]:
    """The silent variables that reach an output no loss reads (an auxiliary head left without a loss): those are
    the pairing's to report, not a broken gradient. The outputs a loss reads are left out: a softmax over one
    class passes a gradient of rounding errors to its mean."""
    if not silent:
        return set()
    with tf.GradientTape() as tape:
        outputs = _forward(model, inputs)
        read = {id(_prediction(outputs, head)) for head in heads}
        leaves = [tensor for tensor in outputs.values() if tensor.dtype.is_floating and id(tensor) not in read]
        if not leaves:
            return set()
        total = tf.add_n([tf.reduce_mean(tf.cast(tensor, tf.float32)) for tensor in leaves])
    ordered = sorted(silent)
    gradients = tape.gradient(total, [variables[index] for index in ordered])
    return {index for index, gradient in zip(ordered, gradients) if _has_gradient(gradient)}


def _rolled(inputs: list[tf.Tensor]) -> list[tf.Tensor]:
    """Every sample given another sample's input."""
    return [tf.roll(tensor, 1, axis=0) for tensor in inputs]


def _ignoring_input(model: keras.Model, inputs: list[tf.Tensor], heads: Sequence[AuditHead], batch: int
                    ) -> list[AuditHead]:
    """The heads whose output does not change when each sample gets another sample's input (none when no input
    can change: every sample is the same)."""
    rolled = _rolled(inputs)
    if batch < 2 or all(np.array_equal(a, b) for a, b in zip(inputs, rolled)):
        return []
    first, second = _forward(model, inputs), _forward(model, rolled)
    still = []
    for head in heads:
        a, b = _prediction(first, head), _prediction(second, head)
        if a is not None and b is not None and a.shape == b.shape and not moved(a, b):
            still.append(head)
    return still


def moved(a, b) -> bool:
    """Whether two passes' values of one tensor differ, relative to their own scale (a layer that neither reads
    nor mixes what changed repeats them exactly); other shapes count as moved, NaN or inf as still."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return True
    if not a.size:
        return False
    if a.dtype.kind in "fc":
        a, b = a.astype(np.float64), b.astype(np.float64)
        return bool(np.abs(a - b).max() > 1e-6 * (1 + np.abs(a).max()))
    return not np.array_equal(a, b)


def _with_constant(measured: HeadAudit, model: keras.Model, inputs: list[tf.Tensor], head: AuditHead) -> HeadAudit:
    """The head's measurements with the fact that its output ignores the input, and the first layer where the
    input's variation stops (a layer whose input moved and whose output did not)."""
    first, second = LayerByLayer(), LayerByLayer()
    prediction = _prediction(_forward(model, inputs, first), head)
    _forward(model, _rolled(inputs), second)
    values = np.asarray(prediction, dtype=np.float32) if prediction is not None else np.zeros(0)
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    op, layer = _variation_stop(first, second) or ("", "")
    return HeadAudit(measured.values, measured.loss_value, measured.loss_error, measured.labels_real,
                     Constant((low, high), op, layer))


def _variation_stop(first: LayerByLayer, second: LayerByLayer) -> tuple[str, str] | None:
    if len(first.calls) != len(second.calls):
        return None
    for (name, layer, inputs_a, outputs_a), (_, _, inputs_b, outputs_b) in zip(first.calls, second.calls):
        if any(a.shape != b.shape for a, b in zip(inputs_a + outputs_a, inputs_b + outputs_b)):
            continue
        if any(moved(a, b) for a, b in zip(inputs_a, inputs_b)) and not any(
                moved(a, b) for a, b in zip(outputs_a, outputs_b)):
            return canonical(_op_name(layer)), name
    return None
