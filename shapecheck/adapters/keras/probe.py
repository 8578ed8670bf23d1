"""The batch-mixing probe of a Keras 3 model (as `shapecheck.adapters.torch.probe` for PyTorch): change one sample,
see whether another sample's output moves.

No shape reveals a normalisation, reduction or reshape over the batch axis (`l2_normalize(x, axis=0)` in a Lambda):
only values do. The probe runs the model for real, in inference mode (`training=False`: batch normalisation on its
moving statistics, dropout off, so that no correct layer mixes samples), on two made-up samples (or the batch the
model only runs at), twice: the second time with sample 0 of every input changed. When samples 1.. of an output
moved (and the same inputs give the same outputs), the model runs twice more layer by layer, to name the first layer
whose output for samples 1.. moved while its inputs for them did not. The model is left as it was: its state
variables (a stateful RNN's states, a seed generator's) are restored before every pass and after the last, and the
global random generators are not touched.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import keras
import numpy as np
import tensorflow as tf

from shapecheck.adapters.keras.audit import LayerByLayer, functional_graph, made_up_inputs, moved
from shapecheck.adapters.keras.edit import MAX_PARAMETERS
from shapecheck.adapters.keras.tracer import attribute_names, tensors_in
from shapecheck.audit import MAX_ACTIVATIONS, activations
from shapecheck.shapes import TensorMeta, batch_axis
from shapecheck.trace import ProbeResult, Trace

SAMPLES = 2   # as the PyTorch probe: one sample changed, one watched
UNKNOWN = "unknown"   # a tensor's batch axis the traces do not give


def probe_batch_mixing(model: keras.Model, specs: list[TensorMeta], trace: Trace) -> tuple[ProbeResult | None, str]:
    """Return (result when samples mix, note when the probe was skipped). `trace` (traced at N and N + 1) says on
    which axis of each layer's inputs and outputs the samples are: axis 0 unless a layer moved them."""
    count = sum(math.prod(variable.shape) for variable in model.weights)
    if count > MAX_PARAMETERS:
        return None, f"batch-mixing probe skipped: {count / 1e6:.0f}M parameters (limit {MAX_PARAMETERS // 10**6}M)"
    if keras.backend.backend() != "tensorflow":
        return None, f"batch-mixing probe skipped: it runs on the TensorFlow backend, not {keras.backend.backend()}"
    batch = _batch(trace)
    if batch < 2:
        return None, ""   # the model takes one sample at a time: there is nothing to mix
    computed = activations(trace, batch)
    if computed > MAX_ACTIVATIONS:
        return None, f"batch-mixing probe skipped: the forward pass computes {computed / 1e6:,.0f}M values " \
                     f"(limit {MAX_ACTIVATIONS // 10**6}M)"
    axes = _Axes(trace)
    try:
        with _quiet(), _kept(model) as restore:
            base = made_up_inputs(specs, batch)
            changed = [_changed(tensor, other) for tensor, other in zip(base, made_up_inputs(specs, batch, seed=1))]
            first, second = _run(model, base, restore), _run(model, changed, restore)
            if not _outputs_moved(first, second, axes.outputs, batch):
                return None, ""
            if _outputs_moved(first, _run(model, base, restore), axes.outputs, batch):
                return None, ""   # the same inputs give other outputs: random in inference mode, not mixing
            layer = _first_mixing_layer(_calls(model, base, restore), _calls(model, changed, restore), axes, batch)
    except Exception as exc:   # the probe is best-effort: the symbolic trace already ran
        return None, f"batch-mixing probe skipped: the real forward pass raised {type(exc).__name__}"
    return ProbeResult(layer=layer), ""


def _batch(trace: Trace) -> int:
    """`SAMPLES`; the batch size the model declares for its inputs (a stateful RNN runs only at that one); the
    traced batch when the model failed at one sample more (a batch size written into a reshape)."""
    declared = [spec.shape[0] for spec in trace.declared_inputs or () if spec.shape]
    fixed = next((size for size in declared if size > 0), None)
    if fixed is None and (trace.alternate is None or trace.alternate.failure is not None):
        fixed = trace.batch
    return fixed if fixed is not None else SAMPLES


class _Axes:
    """Per layer, the axis of each input and output that holds the samples: the one whose size follows the batch
    between the traces at N and N + 1, else axis 0 (every Keras layer's convention)."""

    def __init__(self, trace: Trace):
        other = trace.alternate
        found = {layer.name: layer for layer in other.layers} if other is not None and other.failure is None else {}
        self.layers: dict[str, tuple[list, list]] = {}
        for layer in trace.layers:
            twin = found.get(layer.name)
            if twin is not None:
                self.layers[layer.name] = (_axes(layer.inputs, twin.inputs), _axes(layer.outputs, twin.outputs))
        outputs = other.outputs if other is not None and other.failure is None else {}
        self.outputs = _axes(list(trace.outputs.values()),
                             [outputs.get(path) for path in trace.outputs]) if len(outputs) == len(trace.outputs) \
            else []

    def of(self, name: str) -> tuple[list, list]:
        return self.layers.get(name, ([], []))


def _axes(at_batch: list, at_next: list) -> list:
    """Each tensor's batch axis (None: no axis follows the batch), from its shapes at N and N + 1."""
    if len(at_batch) != len(at_next):
        return []
    return [batch_axis(a.shape, b.shape) if a is not None and b is not None else UNKNOWN
            for a, b in zip(at_batch, at_next)]


@contextlib.contextmanager
def _quiet():
    """TensorFlow's retracing notices (a new batch size for a jit-compiled convolution) are not the user's."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


@contextlib.contextmanager
def _kept(model: keras.Model):
    """The model's state variables (moving statistics, an RNN's states, seed generators) as they were, before every
    pass (the function yielded restores them) and after the last."""
    state = [(variable, variable.numpy()) for variable in model.non_trainable_variables]

    def restore():
        for variable, value in state:
            variable.assign(value)

    try:
        yield restore
    finally:
        restore()


def _changed(tensor: tf.Tensor, other: tf.Tensor) -> tf.Tensor:
    """A copy with sample 0 replaced: floats by other values, integers and booleans flipped (0 <-> 1)."""
    values = np.array(tensor)
    if values.dtype.kind == "f":
        values[0] = np.asarray(other)[0]
    elif values.dtype.kind in "iu":
        values[0] = 1 - values[0]
    elif values.dtype.kind == "b":
        values[0] = ~values[0]
    return tf.convert_to_tensor(values, dtype=tensor.dtype)


def _run(model: keras.Model, inputs: list[tf.Tensor], restore) -> list[tf.Tensor]:
    restore()
    return tensors_in(model(inputs if len(inputs) > 1 else inputs[0], training=False))


def _calls(model: keras.Model, inputs: list[tf.Tensor], restore) -> list[tuple[str, list, list]]:
    """Every layer the pass ran, in order, with its input and output tensors: a functional model's graph as the
    tracer runs it (nested models entered, their layers named `outer.inner`), a subclassed model's own sublayers
    by the attribute that holds them."""
    restore()
    graph = functional_graph(model)
    if graph is not None:
        recorder = LayerByLayer(training=False)
        recorder.run(graph, inputs)
        return [(name, inputs, outputs) for name, _, inputs, outputs in recorder.calls]
    calls: list[tuple[str, list, list]] = []
    with _watching_sublayers(model, calls):
        model(inputs if len(inputs) > 1 else inputs[0], training=False)
    return calls


@contextlib.contextmanager
def _watching_sublayers(model: keras.Model, calls: list):
    """A subclassed model's `call` runs Python: its direct sublayers' calls are recorded (theirs run unwatched),
    named as the tracer names them."""
    original = keras.layers.Layer.__call__
    attributes = attribute_names(model)

    def call(layer, *args, **kwargs):
        if layer is model:
            return original(layer, *args, **kwargs)
        keras.layers.Layer.__call__ = original
        try:
            outputs = original(layer, *args, **kwargs)
        finally:
            keras.layers.Layer.__call__ = call
        calls.append((attributes.get(id(layer), layer.name), tensors_in(args), tensors_in(outputs)))
        return outputs

    keras.layers.Layer.__call__ = call
    try:
        yield
    finally:
        keras.layers.Layer.__call__ = original


def _others(tensor, axis, batch: int) -> np.ndarray | None:
    """Samples 1.. of a tensor along the axis that holds the samples (`axis`: from the traces, None when no axis
    follows the batch, `UNKNOWN` when the traces do not say: axis 0 if it holds `batch` values); None when the
    tensor has no batch axis (a reduction over the samples, a constant)."""
    values = np.asarray(tensor)
    if axis is UNKNOWN:
        axis = 0 if values.ndim and values.shape[0] == batch else None
    if axis is None or values.ndim <= axis or values.shape[axis] != batch:
        return None
    return np.take(values, np.arange(1, batch), axis=axis)


def _at(axes: list, index: int):
    return axes[index] if index < len(axes) else UNKNOWN


def _outputs_moved(first: list, second: list, axes: list, batch: int) -> bool:
    """Whether samples 1.. of an output moved (an output with no batch axis is not compared)."""
    if len(first) != len(second):
        return False
    for index, (a, b) in enumerate(zip(first, second)):
        ours, theirs = _others(a, _at(axes, index), batch), _others(b, _at(axes, index), batch)
        if ours is not None and theirs is not None and moved(ours, theirs):
            return True
    return False


def _first_mixing_layer(first: list, second: list, axes: _Axes, batch: int) -> str | None:
    """The first layer whose output moved for samples 1.. (or, having no batch axis, moved at all: a reduction over
    the samples) while its inputs did not."""
    if [name for name, _, _ in first] != [name for name, _, _ in second]:
        return None
    for (name, inputs_a, outputs_a), (_, inputs_b, outputs_b) in zip(first, second):
        input_axes, output_axes = axes.of(name)
        if len(inputs_a) != len(inputs_b) or len(outputs_a) != len(outputs_b) or \
                any(a.shape != b.shape for a, b in zip(inputs_a + outputs_a, inputs_b + outputs_b)):
            continue
        if any(_part_moved(a, b, _at(input_axes, index), batch) for index, (a, b) in enumerate(zip(inputs_a,
                                                                                                  inputs_b))):
            continue   # samples 1.. already differ here: the mixing happened upstream
        if any(_part_moved(a, b, _at(output_axes, index), batch) for index, (a, b) in enumerate(zip(outputs_a,
                                                                                                   outputs_b))):
            return name
    return None


def _part_moved(a, b, axis, batch: int) -> bool:
    """Whether the part of a tensor that samples 1.. own moved; the whole tensor when it has no batch axis."""
    ours, theirs = _others(a, axis, batch), _others(b, axis, batch)
    return moved(a, b) if ours is None or theirs is None else moved(ours, theirs)
