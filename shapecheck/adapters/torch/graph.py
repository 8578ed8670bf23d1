"""Trace a `torch.export` program node by node, naming layers from the export's module-stack metadata.

An exported module is a flat graph (its submodules only hold weights), so module hooks see nothing; the
interpreter sees every node and the `nn_module_stack` it was exported from.
"""

from __future__ import annotations

import torch
from torch import fx

from shapecheck.adapters.torch.tracer import make_inputs, meta, sizes_from_weight, tensor_leaves
from shapecheck.ops import canonical
from shapecheck.trace import Failure, Layer, Op, Trace

_KIND_BY_CLASS = {
    "Linear": "linear", "Conv1d": "conv", "Conv2d": "conv", "Conv3d": "conv", "ConvTranspose2d": "conv",
    "LSTM": "rnn", "GRU": "rnn", "RNN": "rnn", "Embedding": "embedding", "BatchNorm1d": "norm",
    "BatchNorm2d": "norm", "LayerNorm": "norm", "Softmax": "activation", "Sigmoid": "activation",
    "LogSoftmax": "activation", "ReLU": "activation", "Flatten": "flatten", "Dropout": "dropout",
}


def is_exported(model) -> bool:
    return isinstance(model, fx.GraphModule) and any(
        "nn_module_stack" in node.meta for node in model.graph.nodes)


def run_graph(model: fx.GraphModule, specs, batch: int, target: str) -> Trace:
    from torch._subclasses.fake_tensor import FakeTensorMode

    recorder = _Recorder(model)
    trace = Trace(target=target, framework="torch", inputs=[], model_class="ExportedProgram")
    with torch.no_grad(), FakeTensorMode(allow_non_fake_inputs=True):
        inputs = make_inputs(specs, batch, real=False)
        trace.inputs = [meta(t) for t in inputs]
        recorder.producer.update({id(t): -1 for t in inputs})
        try:
            output = recorder.run(*inputs)
        except Exception as exc:
            first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
            node = recorder.current
            trace.failure = Failure(layer=recorder.path_of(node), op=_op_name(node), exception=type(exc).__name__,
                                    message=first, inputs=recorder.inputs_of(node), op_index=len(recorder.ops))
        else:
            leaves = list(tensor_leaves(output))
            trace.outputs = {path: meta(t) for path, t in leaves}
            trace.output_ops = {path: recorder.producer.get(id(t)) for path, t in leaves}
            trace.output_path = leaves[0][0] if leaves else None
            trace.output_op = recorder.producer.get(id(leaves[0][1])) if leaves else None
    trace.layers = list(recorder.layers.values())
    trace.ops = recorder.ops
    return trace


class _Recorder(fx.Interpreter):
    def __init__(self, model: fx.GraphModule):
        super().__init__(model)
        self.params = dict(model.named_parameters())
        self.layers: dict[str, Layer] = {"": Layer(name="", type="ExportedProgram", kind="container", calls=1,
                                                   is_leaf=False)}
        self.ops: list[Op] = []
        self.producer: dict[int, int] = {}
        self.current: fx.Node | None = None

    def path_of(self, node: fx.Node | None) -> str | None:
        stack = node.meta.get("nn_module_stack") if node is not None else None
        return list(stack.values())[-1][0] if stack else None

    def inputs_of(self, node: fx.Node | None):
        if node is None:
            return []
        values = [self.env.get(arg) for arg in node.all_input_nodes]
        return [meta(v) for v in values if isinstance(v, torch.Tensor)]

    def run_node(self, node: fx.Node):
        self.current = node
        result = super().run_node(node)
        if node.op == "call_function" and isinstance(result, torch.Tensor):
            self._record(node, result)
        return result

    def _record(self, node: fx.Node, result: torch.Tensor):
        tensors = [self.env.get(arg) for arg in node.all_input_nodes]
        tensors = [t for t in tensors if isinstance(t, torch.Tensor)]
        path = self.path_of(node) or ""
        index = len(self.ops)
        self.ops.append(Op(index, _op_name(node), path, [meta(t) for t in tensors], [meta(result)],
                           [self.producer.get(id(t)) for t in tensors]))
        self.producer[id(result)] = index
        if path and path not in self.layers:
            type_name = _class_name(list(node.meta["nn_module_stack"].values())[-1][1])
            self.layers[path] = _layer(path, type_name, self.params)
            self._ensure_parents(path)
        layer = self.layers.get(path)
        if layer is not None and path:
            if not layer.inputs:
                activations = [t for t in tensors if not isinstance(t, torch.nn.Parameter)]
                layer.inputs = [meta(t) for t in activations[:1]]
                layer.input_producers = [self.producer.get(id(t)) for t in activations[:1]]
                layer.calls = 1
            layer.outputs = [meta(result)]

    def _ensure_parents(self, path: str):
        parent = path.rpartition(".")[0]
        while parent and parent not in self.layers:
            self.layers[parent] = Layer(name=parent, type="Module", kind="container", calls=1, is_leaf=False)
            parent = parent.rpartition(".")[0]
        if parent in self.layers:
            self.layers[parent].is_leaf = False


def _layer(path: str, type_name: str, params: dict) -> Layer:
    own = {name.rpartition(".")[2]: meta(p) for name, p in params.items() if name.rpartition(".")[0] == path}
    kind = _KIND_BY_CLASS.get(type_name, "other")
    return Layer(name=path, type=type_name, kind=kind, params=own, config=sizes_from_weight(kind, type_name, own.get("weight")))


def _class_name(module_type) -> str:
    return module_type.__name__ if isinstance(module_type, type) else str(module_type).rpartition(".")[2]


def _op_name(node: fx.Node | None) -> str | None:
    if node is None:
        return None
    target = node.target
    name = getattr(target, "__name__", str(target))
    return canonical(name.split(".")[0])   # `conv2d.default` -> `conv2d`; aten spells no alias, so no spelling kept


