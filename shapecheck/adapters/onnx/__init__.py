"""ONNX adapter: shape inference node by node, without running the model and without torch or tensorflow.

Each node's output types come from ONNX's own inference for that operator, in strict form: a node whose inputs do
not fit (a Gemm whose weight does not match, a Conv with the wrong channels) raises there, and the trace pins it.
Small integer tensors that shapes are computed from (Shape -> Gather -> Concat -> Reshape) are evaluated with
ONNX's reference implementation, so reshapes resolve. Weights stored in external files are never read.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import defs, helper, numpy_helper, shape_inference

from shapecheck.adapters.onnx.wire import WireError, read_structure
from shapecheck.edits import Unsupported
from shapecheck.errors import ShapecheckError
from shapecheck.losses import LossContract
from shapecheck.ops import canonical
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Failure, Layer, Op, Trace, spatial_config, traced_at_two_batches

FRAMEWORK = "onnx"
TAKES_VALUES = False  # traced from shapes: no input values (`example`) or user `post` code reach the model
EDITABLE = frozenset({"layer", "output", "model"})   # `Edit.on` values `edited` applies
TRAINS = False   # a graph has no training mode: verification re-checks, it does not take a step
_DTYPES = {TensorProto_value: np_name for TensorProto_value, np_name in (
    (1, "float32"), (2, "uint8"), (3, "int8"), (5, "int16"), (6, "int32"), (7, "int64"), (9, "bool"),
    (10, "float16"), (11, "float64"), (16, "bfloat16"))}
_ONNX_DTYPES = {name: value for value, name in _DTYPES.items()}
_KINDS = {"Gemm": "linear", "Conv": "conv", "ConvTranspose": "conv", "LSTM": "rnn", "GRU": "rnn", "RNN": "rnn",
          "BatchNormalization": "norm", "LayerNormalization": "norm", "MaxPool": "pool", "AveragePool": "pool",
          "GlobalAveragePool": "pool", "GlobalMaxPool": "pool", "Softmax": "activation", "Sigmoid": "activation",
          "LogSoftmax": "activation", "Relu": "activation", "Flatten": "flatten", "Reshape": "flatten",
          "Dropout": "dropout", "Gather": "other"}
_OP_NAMES = {"Softmax": "softmax", "LogSoftmax": "log_softmax", "Sigmoid": "sigmoid", "Reshape": "reshape",
             "Flatten": "flatten", "Gemm": "linear", "MatMul": "linear", "Conv": "conv", "Identity": "identity",
             "Dropout": "dropout", "Transpose": "transpose", "Squeeze": "squeeze", "Unsqueeze": "unsqueeze"}
_VALUE_OPS = {"Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Slice", "Cast", "Mul", "Add", "Sub",
              "Div", "ConstantOfShape", "Range", "ReduceProd", "Equal", "Where", "Expand", "Reshape", "Identity",
              "Neg", "Abs", "Max", "Min", "Mod", "Floor", "Ceil", "Less", "Greater", "Not", "And", "Or", "Tile",
              "Transpose", "ReduceMax", "ReduceMin", "ReduceSum"}
_MAX_VALUE_SIZE = 64     # shape arithmetic works on tiny int tensors; larger values are data, not shapes


def prepare() -> None:
    """Nothing to import ahead: the model's own load brought the framework in."""


def owns(obj) -> bool:
    return isinstance(obj, onnx.ModelProto)


def load_file(path: str):
    """Load the graph without its weights: large initializers lose their payload on reading (see `wire`),
    external weight files stay on disk (only their locations are checked)."""
    try:
        try:
            model = onnx.ModelProto.FromString(read_structure(path, _MAX_VALUE_SIZE))
        except (WireError, DecodeError):   # let ONNX's own reader say what is wrong with the file
            model = onnx.load(path, load_external_data=False)
    except Exception as exc:
        raise ShapecheckError(f"cannot load `{path}` as an ONNX model: {type(exc).__name__}: {exc}", kind="load") from exc
    if not model.graph.node or not model.graph.output:
        raise ShapecheckError(f"`{path}` holds no ONNX graph (no nodes or no outputs): empty, or not an ONNX file",
                              kind="load")
    folder = Path(path).resolve().parent
    for tensor in model.graph.initializer:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), "")
            resolved = (folder / location).resolve()
            if folder != resolved and folder not in resolved.parents:
                raise ShapecheckError(f"`{path}` refers to external data `{location}` outside its folder; refusing "
                                      "to follow it", kind="load")
    return model


def declared_inputs(model, batch: int) -> list[TensorMeta] | None:
    specs = []
    for value in _graph_inputs(model):
        dims = _dims(value)
        if dims is None:
            return None
        if any(d == -1 for d in dims[1:]):
            return None
        specs.append(TensorMeta((batch, *dims[1:]), _DTYPES.get(value.type.tensor_type.elem_type, "float32")))
    return specs or None


def _graph_inputs(model):
    initializers = {t.name for t in model.graph.initializer}
    return [value for value in model.graph.input if value.name not in initializers]


def _dims(value) -> tuple[int, ...] | None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim)


def trace(model, specs: list[TensorMeta], target: str, sites=None, example=None, post=None) -> Trace:
    """Shape inference at the batch of `specs` and at the next; example values and `post` (PyTorch code after the
    model) do not apply to a graph: only their shapes do."""
    primary = traced_at_two_batches(lambda batch: _run(model, specs, batch, target), specs[0].shape[0])
    primary.declared_inputs = [TensorMeta(_dims(v) or (), _DTYPES.get(v.type.tensor_type.elem_type, "float32"))
                               for v in _graph_inputs(model)]
    primary.producer = model.producer_name
    primary.input_names = [v.name for v in _graph_inputs(model)]
    return primary


class _Graph:
    def __init__(self, model):
        self.model = model
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)
        self.initializers = {t.name: t for t in model.graph.initializer}
        self.types: dict[str, onnx.TypeProto] = {}
        self.values: dict[str, np.ndarray] = {}
        self.producer: dict[str, int] = {}

    def bind_inputs(self, specs: list[TensorMeta], batch: int) -> list[TensorMeta]:
        bound = []
        for value, spec in zip(_graph_inputs(self.model), specs):
            shape = (batch, *spec.shape[1:])
            self.types[value.name] = helper.make_tensor_type_proto(_ONNX_DTYPES.get(spec.dtype, 1), list(shape))
            self.producer[value.name] = -1
            bound.append(TensorMeta(shape, spec.dtype))
        for name, tensor in self.initializers.items():
            self.types[name] = helper.make_tensor_type_proto(tensor.data_type, list(tensor.dims))
            if _small(tensor.dims) and tensor.data_location != onnx.TensorProto.EXTERNAL:
                self.values[name] = numpy_helper.to_array(tensor)
        return bound

    def meta(self, name: str) -> TensorMeta | None:
        tensor_type = self.types.get(name)
        if tensor_type is None or not tensor_type.tensor_type.HasField("shape"):
            return None
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.tensor_type.shape.dim)
        return TensorMeta(dims, _DTYPES.get(tensor_type.tensor_type.elem_type, "float32"))

    def infer(self, node):
        if node.op_type == "Conv":
            self._check_conv_channels(node)
        schema = defs.get_schema(node.op_type, self.opset, node.domain)
        inputs = {name: self.types[name] for name in node.input if name in self.types}
        data = {name: numpy_helper.from_array(self.values[name], name) for name in node.input if name in self.values}
        outputs = shape_inference.infer_node_outputs(schema, node, inputs, data)
        self.types.update(outputs)
        if node.op_type in ("Shape", "Size"):
            self._shape_value(node)
        elif node.op_type in _VALUE_OPS and all(not name or name in self.values for name in node.input):
            self._evaluate(node)

    def _shape_value(self, node):
        """A graph exported with a dynamic batch computes its reshape targets from `Shape`: with the input bound,
        the dims are known, so the value is too."""
        meta = self.meta(node.input[0])
        if meta is None or -1 in meta.shape:
            return
        dims = np.array(meta.shape, dtype=np.int64)
        if node.op_type == "Size":
            self.values[node.output[0]] = np.array(dims.prod(), dtype=np.int64)
            return
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        self.values[node.output[0]] = dims[attributes.get("start", 0):attributes.get("end", len(dims))]

    def _check_conv_channels(self, node):
        """ONNX's Conv inference takes the output channels from the weight and never compares the input's."""
        x, weight = self.meta(node.input[0]), self.meta(node.input[1])
        groups = next((helper.get_attribute_value(a) for a in node.attribute if a.name == "group"), 1)
        if x is not None and weight is not None and len(x.shape) >= 3 and x.shape[1] != weight.shape[1] * groups:
            raise ValueError(f"Conv: the input has {x.shape[1]} channels, the weight {list(weight.shape)} takes "
                             f"{weight.shape[1] * groups}")

    def _evaluate(self, node):
        from onnx.reference import ReferenceEvaluator

        # A one-node model carries the graph's opset: a bare node runs as the newest version (Unsqueeze-13
        # wants its axes as an input, an opset-11 graph has them as an attribute).
        value = helper.make_empty_tensor_value_info
        graph = helper.make_graph([node], "value", [value(n) for n in node.input if n], [value(n) for n in node.output])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            results = ReferenceEvaluator(model).run(None, {name: self.values[name] for name in node.input if name})
        except Exception:
            return   # a value we cannot compute only leaves later shapes less resolved
        for name, value in zip(node.output, results):
            if np.asarray(value).size <= _MAX_VALUE_SIZE:
                self.values[name] = np.asarray(value)


def _small(dims) -> bool:
    return int(np.prod(dims)) <= _MAX_VALUE_SIZE if len(dims) else True


def _run(model, specs: list[TensorMeta], batch: int, target: str) -> Trace:
    graph = _Graph(model)
    trace = Trace(target=target, framework="onnx", inputs=graph.bind_inputs(specs, batch), mode="symbolic",
                  model_class=model.graph.name or "graph")
    layers: dict[str, Layer] = {}
    for node, name in zip(model.graph.node, _unique_names(model.graph.node)):
        layer = layers[name] = _layer(name, node, graph)
        activations = [n for n in node.input if n and n not in graph.initializers]
        layer.inputs = layer.inputs or [m for m in (graph.meta(n) for n in activations) if m is not None]
        layer.input_producers = layer.input_producers or [graph.producer.get(n) for n in activations]
        try:
            graph.infer(node)
        except Exception as exc:
            message = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            spelling = _op_spelling(node)
            trace.failure = Failure(layer=name, op=canonical(spelling), op_spelling=spelling,
                                    exception=type(exc).__name__, message=message, inputs=layer.inputs,
                                    op_index=len(trace.ops), args=_shape_args(node, graph),
                                    producers=layer.input_producers)
            break
        layer.calls += 1
        layer.outputs = [m for m in (graph.meta(n) for n in node.output) if m is not None]
        if not trace.notes and any(m is None or -1 in m.shape for m in (graph.meta(n) for n in node.output if n)):
            trace.notes.append(f"shape inference could not resolve the output of `{node.name or name}` "
                               f"({node.op_type}): it depends on values only known at run time")
        spelling = _op_spelling(node)
        op = Op(len(trace.ops), canonical(spelling), name, layer.inputs, layer.outputs, layer.input_producers,
                _op_args(node), spelling=spelling)
        trace.ops.append(op)
        for output in node.output:
            graph.producer[output] = op.index
    trace.layers = [Layer(name="", type="graph", kind="container", calls=1, is_leaf=False), *layers.values()]
    if trace.failure is None:
        for value in model.graph.output:
            meta = graph.meta(value.name)
            if meta is not None:
                trace.outputs[value.name] = meta
        trace.output_ops = {name: graph.producer.get(name) for name in trace.outputs}
        trace.output_path = next(iter(trace.outputs), None)
        trace.output_op = graph.producer.get(trace.output_path)
    return trace


def _op_spelling(node) -> str:
    """A node's op as messages have always named it: PyTorch's name for a few, else the lower-cased type."""
    return _OP_NAMES.get(node.op_type, node.op_type.lower())


def _unique_names(nodes) -> list[str]:
    """A module exported as several nodes (SiLU: Sigmoid, Mul; an LSTM with its Transposes) gives one layer per
    node: the module's own name goes to its weighted node (else the first), the others get `name#OpIndex`."""
    def rank(node) -> int:
        kind = _KINDS.get(node.op_type, "other")
        return 2 if kind in ("linear", "conv", "rnn", "norm") or node.op_type == "MatMul" else kind != "other"

    names = [layer_name(node, index) for index, node in enumerate(nodes)]
    owner: dict[str, int] = {}
    for index, (node, name) in enumerate(zip(nodes, names)):
        if name not in owner or rank(node) > rank(nodes[owner[name]]):
            owner[name] = index
    return [name if owner[name] == index else f"{name}#{node.op_type}{index}"
            for index, (node, name) in enumerate(zip(nodes, names))]


def layer_name(node, index: int) -> str:
    """`/features/features.0/Conv` -> `features.0`: the module path PyTorch's exporter writes into node names."""
    parts = [p for p in node.name.split("/") if p][:-1]
    if not parts:   # a functional op in the top-level forward (`/Flatten`), or a graph not from PyTorch
        return node.name.strip("/") or f"{node.op_type}_{index}"
    path = ""
    for part in parts:
        last = path.rsplit(".", 1)[-1]
        if not path or part.startswith(path + "."):
            path = part
        elif part.startswith(last + "."):   # `/model/classifier/classifier.4`: a scope repeats its parent's name
            path += part[len(last):]
        else:
            path = f"{path}.{part}"
    return path


def _layer(name: str, node, graph: _Graph) -> Layer:
    # float initializers are weights; integer ones are shapes, axes and indices
    weights = [graph.meta(n) for n in node.input if n in graph.initializers]
    weights = [m for m in weights if m is not None and m.dtype.startswith(("float", "bfloat"))]
    params = dict(zip(("weight", "bias", "param2", "param3"), weights))
    kind = _KINDS.get(node.op_type, "other")
    weight = params.get("weight")
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    config = {}
    if node.op_type == "MatMul" and weight is not None and len(weight.shape) == 2:
        kind = "linear"
        config = {"in_features": weight.shape[0], "out_features": weight.shape[1]}
    elif kind == "linear" and weight is not None and len(weight.shape) == 2:
        out_features, in_features = weight.shape if attrs.get("transB", 0) else weight.shape[::-1]
        config = {"in_features": in_features, "out_features": out_features}
    elif kind == "conv" and weight is not None and len(weight.shape) >= 3:
        groups = attrs.get("group", 1)
        config = {"in_channels": weight.shape[1] * groups, "out_channels": weight.shape[0], "groups": groups,
                  "channel_axis": 1, **_window(tuple(weight.shape[2:]), attrs)}
    elif kind == "rnn" and weight is not None and len(weight.shape) == 3:
        gates = {"LSTM": 4, "GRU": 3}.get(node.op_type, 1)   # W is [directions, gates * hidden, input]
        config = {"input_size": weight.shape[2], "hidden_size": attrs.get("hidden_size", weight.shape[1] // gates),
                  "batch_first": attrs.get("layout", 0) == 1, "bidirectional": weight.shape[0] == 2}
    elif kind == "pool" and "kernel_shape" in attrs:
        config = {"channel_axis": 1, **_window(tuple(attrs["kernel_shape"]), attrs)}
    return Layer(name=name, type=node.op_type, kind=kind, params=params, config=config)


def _window(kernel: tuple[int, ...], attrs: dict) -> dict:
    """ONNX lists `pads` as every axis' start, then every axis' end: the normal form keeps the starts."""
    return spatial_config(len(kernel), kernel_size=kernel, stride=attrs.get("strides", [1]),
                          padding=attrs.get("pads", [0])[:len(kernel)], dilation=attrs.get("dilations", [1]))


def _op_args(node) -> dict:
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if node.op_type in ("Softmax", "LogSoftmax"):
        return {"dim": attrs.get("axis", -1)}
    return {}


def _shape_args(node, graph: _Graph) -> dict:
    """For a failing Reshape: the shape it was asked for, as `view(...)` arguments read."""
    if node.op_type == "Reshape" and len(node.input) > 1 and node.input[1] in graph.values:
        return {"args": [int(d) for d in graph.values[node.input[1]]]}
    return {}


from shapecheck.adapters.onnx.edit import edited  # noqa: E402, F401 (recipe verification)


@contextlib.contextmanager
def recording_definition_sites():
    """An ONNX graph is never built by user code in this process: there are no sites to record."""
    yield {}


def compiled_losses(model, from_logits: bool | None) -> dict[str, LossContract]:
    """A graph carries no loss."""
    return {}


def train_step(model, specs: list[TensorMeta], example, labels, loss: LossContract, post=None) -> str:
    raise Unsupported("an ONNX graph has no training step")


def audit(model, specs: list[TensorMeta], example, heads) -> tuple[None, str]:
    """A graph has no gradients here: checking an .onnx file imports no framework that computes them."""
    return None, ""


def check_loss(output: TensorMeta, labels, loss):
    """An exported graph has no loss of its own: judge the named loss in its framework's semantics, on shapes
    (importing PyTorch or TensorFlow for an .onnx file would cost seconds)."""
    from shapecheck.oracle import simulate

    return simulate(output, labels.meta, labels.array, loss)
