"""Apply a recipe's edits to a copy of an ONNX graph: what re-exporting the fixed source model would give, close
enough for shape inference to re-check it. A head gets initializers of the new size, a dropped activation becomes
an `Identity`, output edits append nodes. Weights are never needed: shapes are what inference reads.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from shapecheck.edits import Edit, Unsupported
from shapecheck.labels import LabelInfo

_ACTIVATIONS = {"sigmoid": "Sigmoid", "softmax": "Softmax", "log_softmax": "LogSoftmax"}


def edited(model, edits: tuple[Edit, ...], labels: LabelInfo | None):
    from shapecheck.adapters.onnx import _op_spelling, _unique_names

    copied = onnx.ModelProto()
    copied.CopyFrom(model)
    names = _unique_names(copied.graph.node)
    for edit in edits:
        if edit.on == "layer" and edit.op == "resize":
            _resize(copied, _node(copied, names, edit.layer), **dict(edit.args))
        elif edit.on == "layer" and edit.op in ("drop_op", "swap_op", "op_dim"):
            name, ordinal = edit.args[:2]
            nodes = [n for n in copied.graph.node if _op_spelling(n) == name]   # op edits name ops by spelling
            if ordinal >= len(nodes):
                raise Unsupported(f"no {name} node #{ordinal}")
            _change_op(nodes[ordinal], edit)
        elif edit.on == "output" and edit.op in ("activation", "permute"):
            _append(copied, edit)
        elif edit.on == "model" and edit.op == "add_classifier":
            _append(copied, edit)
        else:
            raise Unsupported(f"{edit.on} edit `{edit.op}` on an ONNX graph; apply it to the source model")
    return copied


def _node(model, names: list[str], layer: str):
    for node, name in zip(model.graph.node, names):
        if name == layer:
            return node
    raise Unsupported(f"no node `{layer}`")


def _resize(model, node, **sizes):
    """A Gemm/MatMul/Conv with `out` outputs or `in` inputs: its weight and bias initializers get the new dims."""
    initializers = {t.name: t for t in model.graph.initializer}
    weight = initializers.get(node.input[1]) if len(node.input) > 1 else None
    if weight is None:
        raise Unsupported(f"the {node.op_type} node's weight is computed, not stored")
    dims = list(weight.dims)
    transposed = node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attribute(node, "transB", 0))
    out_axis, in_axis = (1, 0) if transposed else (0, 1)
    if node.op_type not in ("Gemm", "MatMul", "Conv"):
        raise Unsupported(f"cannot resize a {node.op_type} node")
    if "out" in sizes:
        dims[out_axis] = sizes["out"]
        bias = initializers.get(node.input[2]) if len(node.input) > 2 else None
        if bias is not None:
            _reshape_initializer(bias, [sizes["out"]])
    if "in" in sizes:
        dims[in_axis] = sizes["in"] // (_attribute(node, "group", 1) if node.op_type == "Conv" else 1)
    _reshape_initializer(weight, dims)


def _reshape_initializer(tensor, dims: list[int]):
    array = np.zeros(dims, dtype=helper.tensor_dtype_to_np_dtype(tensor.data_type))
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))


def _attribute(node, name: str, default):
    return next((helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)


def _change_op(node, edit: Edit):
    if edit.op == "drop_op":   # the node passes its input through
        node.op_type = "Identity"
        del node.input[1:]
        del node.attribute[:]
    elif edit.op == "swap_op":
        node.op_type = _ACTIVATIONS[edit.args[2]]
    else:
        del node.attribute[:]
        node.attribute.append(helper.make_attribute("axis", edit.args[2]))


def _append(model, edit: Edit):
    output = model.graph.output[0]
    produced = output.name + "_shapecheck_in"
    for node in model.graph.node:
        node.output[:] = [produced if name == output.name else name for name in node.output]
    if edit.op == "activation":
        activation, axis = edit.args
        extra = {"axis": 1 if axis is None else axis} if activation != "sigmoid" else {}
        node = helper.make_node(_ACTIVATIONS[activation], [produced], [output.name], **extra)
    elif edit.op == "add_classifier":   # a new linear layer on the graph's features
        features, outputs, _ = edit.args
        weight = numpy_helper.from_array(np.zeros((features, outputs), dtype=np.float32), "shapecheck_classifier")
        model.graph.initializer.append(weight)
        node = helper.make_node("MatMul", [produced, weight.name], [output.name])
    else:
        node = helper.make_node("Transpose", [produced], [output.name], perm=list(edit.args[0]))
    model.graph.node.append(node)
    output.type.tensor_type.ClearField("shape")   # inference fills in the new shape
