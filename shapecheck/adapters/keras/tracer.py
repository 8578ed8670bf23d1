"""Trace a Keras 3 model with symbolic tensors: every layer's shapes, its activation, and where it fails.

Functional and Sequential models are re-run node by node on a batch-sized symbolic input (so a different
`--input` is propagated through every layer); subclassed models are called with every sublayer's `__call__`
watched. The nodes that these calls add to the layers are removed afterwards, so the model is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import re

import keras
from keras import tree

from shapecheck.ops import canonical
from shapecheck.shapes import TensorMeta, normalize_dtype
from shapecheck.trace import Failure, Layer, Op, Trace, spatial_config, traced_at_two_batches

KERAS_DIR = os.path.dirname(keras.__file__)
_KINDS = {
    "Dense": "linear", "EinsumDense": "linear",
    "Conv1D": "conv", "Conv2D": "conv", "Conv3D": "conv", "Conv1DTranspose": "conv", "Conv2DTranspose": "conv",
    "SeparableConv2D": "conv", "DepthwiseConv2D": "conv",
    "LSTM": "rnn", "GRU": "rnn", "SimpleRNN": "rnn", "Bidirectional": "rnn",
    "Embedding": "embedding", "BatchNormalization": "norm", "LayerNormalization": "norm",
    "MaxPooling1D": "pool", "MaxPooling2D": "pool", "AveragePooling1D": "pool", "AveragePooling2D": "pool",
    "GlobalAveragePooling1D": "pool", "GlobalAveragePooling2D": "pool", "GlobalMaxPooling1D": "pool",
    "GlobalMaxPooling2D": "pool", "Activation": "activation", "Softmax": "activation", "ReLU": "activation",
    "Flatten": "flatten", "Reshape": "flatten", "Dropout": "dropout",
}
_OP_NAMES = {"linear": "linear", "conv": "conv", "pool": "pool", "rnn": "rnn", "embedding": "embedding",
             "norm": "norm", "dropout": "dropout"}
_ACTIVATIONS = ("log_softmax", "softmax", "sigmoid", "tanh", "relu")


def meta(tensor) -> TensorMeta:
    shape = tuple(-1 if d is None else int(d) for d in tensor.shape)
    return TensorMeta(shape, normalize_dtype(str(tensor.dtype).removeprefix("<dtype: '").rstrip("'>")))


def tensors_in(values) -> list:
    return [t for t in tree.flatten(values) if hasattr(t, "shape") and hasattr(t, "dtype")]


def inner_layer(layer):
    """TimeDistributed/Bidirectional wrap the layer that does the work."""
    return getattr(layer, "layer", None) or getattr(layer, "forward_layer", None) or layer


def activation_name(layer) -> str | None:
    inner = inner_layer(layer)
    kind = type(inner).__name__
    if kind == "Softmax":
        return "softmax"
    if kind == "Lambda":   # `Lambda(lambda t: tf.nn.softmax(t))`: the names its code calls
        names = getattr(getattr(inner, "function", None), "__code__", None)
        called = names.co_names if names else ()
        return next((a for a in _ACTIVATIONS if a in called), None)
    function = getattr(inner, "activation", None)
    name = getattr(function, "__name__", None)
    return None if name in (None, "linear") else name


def _config(layer, kind: str) -> dict:
    inner = inner_layer(layer)
    config = {}
    kernel = getattr(inner, "kernel", None) if getattr(inner, "built", False) else None
    if kind == "linear":
        config["out_features"] = getattr(inner, "units", None)
        if kernel is not None:
            config["in_features"] = int(kernel.shape[0])
    elif kind == "conv":
        config["out_channels"] = getattr(inner, "filters", None)
        if kernel is not None:
            config["in_channels"] = int(kernel.shape[-2]) * getattr(inner, "groups", 1)
        config.update(spatial_config(len(inner.kernel_size), kernel_size=inner.kernel_size, stride=inner.strides,
                                     padding=inner.padding, dilation=getattr(inner, "dilation_rate", None)))
    elif kind == "pool" and hasattr(inner, "pool_size"):
        config.update(spatial_config(len(inner.pool_size), kernel_size=inner.pool_size, stride=inner.strides,
                                     padding=inner.padding))
    elif kind == "rnn":
        cell = getattr(inner, "cell", None)
        config.update(hidden_size=getattr(inner, "units", None), batch_first=True,
                      return_sequences=getattr(layer, "return_sequences", getattr(inner, "return_sequences", False)))
        if cell is not None and getattr(cell, "built", False):
            config["input_size"] = int(cell.kernel.shape[0])
    elif kind == "embedding":
        config["num_embeddings"] = getattr(inner, "input_dim", None)
    if kind in ("conv", "pool", "norm"):
        config["channel_axis"] = -1 if getattr(inner, "data_format", "channels_last") == "channels_last" else 1
    return {k: v for k, v in config.items() if v is not None}


class Recorder:
    """Watches layer calls; remembers the innermost layer that raised and what it received."""

    def __init__(self):
        self.failed: tuple | None = None      # (layer, name, input metas, exception)

    def note_failure(self, layer, name: str, args, exc: Exception):
        if self.failed is None:
            inputs = [meta(t) for t in tensors_in(args)]
            self.failed = (layer, name, inputs, _lambda_cause(layer, inputs, exc))

    @contextlib.contextmanager
    def watching_calls(self):
        original = keras.layers.Layer.__call__
        recorder = self

        def call(layer, *args, **kwargs):
            try:
                return original(layer, *args, **kwargs)
            except Exception as exc:
                recorder.note_failure(layer, layer.name, args, exc)
                raise

        keras.layers.Layer.__call__ = call
        try:
            yield
        finally:
            keras.layers.Layer.__call__ = original

    def failure(self, exc: Exception) -> Failure:
        message = error_line(exc)
        if self.failed is None:
            return Failure(layer=None, op=None, exception=type(exc).__name__, message=message)
        _, name, inputs, inner = self.failed
        return Failure(layer=name, op=None, exception=type(inner).__name__, message=error_line(inner), inputs=inputs)

    def build_failure(self, exc: Exception, sites) -> Trace | None:
        """A factory raised inside a layer call: a trace that holds that layer and the failure."""
        if self.failed is None:
            return None
        layer = self.failed[0]
        record = _layer_record(self.failed[1], layer, sites)
        record.inputs = self.failed[2]
        trace = Trace(target="", framework="keras", inputs=[], layers=[record], failure=self.failure(exc),
                      mode="symbolic", model_class="(model being built)")
        trace.notes.append("the factory raised while building the model; the layers built before it are not traced")
        return trace


def _lambda_cause(layer, inputs: list[TensorMeta], exc: Exception) -> Exception:
    """Keras hides why a Lambda failed on symbolic tensors ("could not automatically infer the shape"): run its
    function once on zeros of the same shapes (one small eager call of the user's own code) to get the reason."""
    if type(layer).__name__ != "Lambda" or not isinstance(exc, NotImplementedError) or not inputs:
        return exc
    try:
        zeros = [keras.ops.zeros(m.shape, dtype=m.dtype) for m in inputs]
        layer.function(*zeros)
    except Exception as cause:
        return cause
    return exc


_BOILERPLATE = ("Exception encountered when calling", "Arguments received by", "\u2022", "Graph execution error",
                "Detected at node", "File ")


def error_line(exc: BaseException) -> str:
    """The line that says what went wrong, without Keras's frame and argument listing or terminal colours."""
    text = re.sub(r"\x1b\[[0-9;]*m|\{\{function_node [^}]*\}\}", "", str(exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    meaningful = [line for line in lines if not line.startswith(_BOILERPLATE)]
    line = (meaningful or lines or [type(exc).__name__])[0]
    return re.sub(r"\s*\[Op:[^\]]*\].*$", "", line)


def _layer_record(name: str, layer, sites) -> Layer:
    kind = _KINDS.get(type(inner_layer(layer)).__name__, "other")
    if isinstance(layer, keras.Model):
        kind = "container"
    params = {}
    for variable in getattr(layer, "weights", []) if getattr(layer, "built", False) else []:
        short = variable.path.rsplit("/", 1)[-1]
        params.setdefault(short, TensorMeta(tuple(int(d) for d in variable.shape),
                                            normalize_dtype(str(variable.dtype))))
    return Layer(name=name, type=type(layer).__name__, kind=kind, params=params, config=_config(layer, kind),
                 source=sites.get(layer) or sites.get(inner_layer(layer)), is_leaf=kind != "container")


class _Run(Recorder):
    def __init__(self, sites):
        super().__init__()
        self.sites = sites
        self.layers: dict[str, Layer] = {}
        self.ops: list[Op] = []
        self.producer: dict[int, int] = {}

    def call_model(self, model, inputs, prefix: str):
        if isinstance(model, keras.Sequential) and getattr(model, "_functional", None) is None:
            model.build(tuple(inputs[0].shape))   # a Sequential without an Input builds on its first call anyway
        graph = model if hasattr(model, "_run_through_graph") else getattr(model, "_functional", None)
        if graph is not None:
            return graph._run_through_graph(inputs, operation_fn=lambda op: self._wrap(op, prefix))
        with self._watching_sublayers(model, prefix):   # subclassed model: its `call` runs Python
            return model(*inputs)

    @contextlib.contextmanager
    def _watching_sublayers(self, model, prefix: str):
        original = keras.layers.Layer.__call__
        run = self
        attributes = attribute_names(model)

        def call(layer, *args, **kwargs):
            if layer is model:
                return original(layer, *args, **kwargs)
            keras.layers.Layer.__call__ = original   # a sublayer's own sublayers run untraced inside it
            name = prefix + attributes.get(id(layer), layer.name)
            try:
                return run._record_call(layer, name, lambda: original(layer, *args, **kwargs), args)
            finally:
                keras.layers.Layer.__call__ = call

        keras.layers.Layer.__call__ = call
        try:
            yield
        finally:
            keras.layers.Layer.__call__ = original

    def _wrap(self, operation, prefix: str):
        name = prefix + operation.name

        def run(*args, **kwargs):
            if isinstance(operation, keras.Model) and (hasattr(operation, "_run_through_graph")
                                                       or getattr(operation, "_functional", None) is not None):
                self.layers.setdefault(name, _layer_record(name, operation, self.sites)).calls += 1
                return self.call_model(operation, tensors_in(args), name + ".")
            return self._record_call(operation, name, lambda: operation(*args, **kwargs), args)

        return run

    def _record_call(self, layer, name: str, call, args):
        inputs = tensors_in(args)
        try:
            _check_merge(layer, inputs)
            outputs = call()
        except Exception as exc:
            self.note_failure(layer, name, args, exc)
            failed = self.layers.setdefault(name, _layer_record(name, layer, self.sites))
            failed.inputs = failed.inputs or [meta(t) for t in inputs]
            failed.input_producers = failed.input_producers or [self.producer.get(id(t)) for t in inputs]
            raise
        record = self.layers.get(name) or _layer_record(name, layer, self.sites)
        self.layers[name] = record
        record.calls += 1
        produced = tensors_in(outputs)
        if record.calls == 1:
            record.inputs = [meta(t) for t in inputs]
            record.input_producers = [self.producer.get(id(t)) for t in inputs]
            record.outputs = [meta(t) for t in produced]
        self._add_ops(record, layer, inputs, produced)
        return outputs

    def _add_ops(self, record: Layer, layer, inputs, outputs):
        """The layer's computation, then its activation as an op of its own (Dense(1, activation="softmax"))."""
        activation = activation_name(layer)
        first = _OP_NAMES.get(record.kind, type(inner_layer(layer)).__name__.lower())
        names = [first] if record.kind != "activation" and first != "lambda" or activation is None else []
        if activation is not None:
            names.append(activation)
        producers = [self.producer.get(id(t)) for t in inputs]
        for index, op_name in enumerate(names):
            op = Op(len(self.ops), canonical(op_name), record.name, [meta(t) for t in inputs] if index == 0 else
                    [meta(t) for t in outputs], [meta(t) for t in outputs], producers,
                    {"dim": -1} if op_name in ("softmax", "log_softmax") else {}, record.source, spelling=op_name)
            self.ops.append(op)
            producers = [op.index]
        for tensor in outputs:
            self.producer[id(tensor)] = len(self.ops) - 1


def attribute_names(model) -> dict[int, str]:
    """A subclassed model's layers by the attribute its `__init__` stored them in (`d2`, `blocks[1]`): the names
    the user wrote, where Keras would say `dense_1`."""
    names = {}
    # on the torch backend a layer is an nn.Module too, and nn.Module keeps sublayers in `_modules`
    for attribute, value in {**vars(model), **getattr(model, "_modules", {})}.items():
        if attribute.startswith("_"):
            continue
        if isinstance(value, keras.layers.Layer):
            names.setdefault(id(value), attribute)
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                if isinstance(item, keras.layers.Layer):
                    names.setdefault(id(item), f"{attribute}[{index}]")
    return names


_MERGES = ("Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


def _check_merge(layer, inputs):
    """Symbolic Concatenate and Add accept maps of different sizes (a U-Net skip connection at an input size that
    does not halve evenly) that fail at run time; fail here as the run would."""
    kind = type(inner_layer(layer)).__name__
    if kind not in _MERGES or len(inputs) < 2:
        return
    shapes = [tuple(tensor.shape) for tensor in inputs]
    rank = len(shapes[0])
    skip = getattr(inner_layer(layer), "axis", None) if kind == "Concatenate" else None
    for shape in shapes[1:]:
        if len(shape) != rank:
            continue
        for axis in range(1, rank):
            a, b = shapes[0][axis], shape[axis]
            if axis == (skip % rank if skip is not None else None) or None in (a, b) or a == b:
                continue
            if kind == "Concatenate" or 1 not in (a, b):
                raise ValueError(f"{kind} needs inputs of the same size outside the joined axis; "
                                 f"{list(shapes[0])} and {list(shape)} differ in axis {axis}")


def _node_counts(model) -> list[tuple]:
    layers = model._flatten_layers(include_self=True, recursive=True)
    return [(layer, len(layer._inbound_nodes), len(layer._outbound_nodes)) for layer in layers]


def _restore_nodes(counts: list[tuple]):
    for layer, inbound, outbound in counts:
        del layer._inbound_nodes[inbound:]
        del layer._outbound_nodes[outbound:]


def run_once(model, specs: list[TensorMeta], batch: int, target: str, sites) -> Trace:
    run = _Run(sites)
    inputs = [keras.KerasTensor((batch, *spec.shape[1:]), dtype=spec.dtype) for spec in specs]
    trace = Trace(target=target, framework="keras", inputs=[meta(t) for t in inputs], mode="symbolic",
                  model_class=type(model).__name__)
    for tensor in inputs:
        run.producer[id(tensor)] = -1
    counts = _node_counts(model)
    try:
        output = run.call_model(model, inputs, "")
    except Exception as exc:  # the model's own error is the finding
        trace.failure = run.failure(exc)
    else:
        leaves = tensors_in(output)
        names = list(getattr(model, "output_names", None) or [])   # a functional model's output layer names
        names = names if len(names) == len(leaves) else [f"[{i}]" for i in range(len(leaves))]
        trace.outputs = {name if len(leaves) > 1 else "": meta(t) for name, t in zip(names, leaves)}
        trace.output_ops = {name if len(leaves) > 1 else "": run.producer.get(id(t)) for name, t in zip(names, leaves)}
        trace.output_path = next(iter(trace.outputs), None)
        trace.output_op = run.producer.get(id(leaves[0])) if leaves else None
        if trace.output_op is None and leaves:   # a subclassed model may return a fresh tensor: its last op
            shape = meta(leaves[0]).shape
            trace.output_op = next((op.index for op in reversed(run.ops) if op.outputs[:1]
                                    and op.outputs[0].shape == shape), None)
    finally:
        _restore_nodes(counts)
    trace.layers = [Layer(name="", type=type(model).__name__, kind="container", calls=1, is_leaf=False)]
    trace.layers += list(run.layers.values())
    trace.ops = run.ops
    return trace


def trace_model(model, specs: list[TensorMeta], target: str, sites, declared) -> Trace:
    primary = traced_at_two_batches(lambda batch: run_once(model, specs, batch, target, sites), specs[0].shape[0])
    primary.declared_inputs = declared
    return primary
