"""Apply a recipe's edits to an in-memory copy of a PyTorch model, and run one real training step on it.

The copy shares no weights with the user's model: parameters become meta tensors (nothing is copied), buffers are
copied (small). Replaced layers are built on the meta device too; the training step gives the copy fresh weights.
"""

from __future__ import annotations

import contextlib
import copy
import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode

from shapecheck.adapters.torch.probe import MAX_PARAMETERS
from shapecheck.adapters.torch.tracer import choose_output, example_tensors, make_inputs, tensor_leaves
from shapecheck.adapters.torch.weights import materialize, own_copy
from shapecheck.edits import Edit, Unsupported
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.oracle import first_line
from shapecheck.shapes import TensorMeta

OP_EDITS = ("drop_op", "swap_op", "op_dim", "flatten_op", "permute_op")
STEP_BATCH = 2   # samples in the real training step: enough for batch statistics, cheap for any model


def edited(model: nn.Module, edits: tuple[Edit, ...], labels: LabelInfo | None) -> nn.Module:
    """A weightless copy of `model` with `edits` applied; Unsupported when one cannot be applied here."""
    if isinstance(model, (torch.jit.ScriptModule, torch.fx.GraphModule)):
        raise Unsupported("a compiled or exported program cannot be edited; edit the source model")
    copied = _weightless_copy(model)
    before, after, dropped = [], [], []
    for edit in edits:
        if edit.on == "layer" and edit.op in OP_EDITS:
            dropped.append(edit)
        elif edit.on == "layer":
            _edit_layer(copied, edit)
        elif edit.on == "input":
            before.append(edit)
        elif edit.on == "output":
            after.append(edit)
        elif edit.on == "model" and edit.op == "add_classifier":
            features, outputs, activation = edit.args
            copied.add_module("shapecheck_classifier", nn.Sequential(
                nn.Linear(features, outputs, device="meta"), *_activation_modules(activation)))
            after.append(Edit("output", "modules", ("shapecheck_classifier",)))
        else:
            raise Unsupported(f"{edit.on} edit `{edit.op}`")
    if before or after or dropped:
        _rewire(copied, before, after, dropped, tuple(labels.shape) if labels is not None else ())
    own_copy(copied)
    return copied


def _weightless_copy(model: nn.Module) -> nn.Module:
    memo = {id(p): nn.Parameter(torch.empty_like(p, device="meta"), requires_grad=p.requires_grad)
            for p in model.parameters()}
    try:
        return copy.deepcopy(model, memo)
    except Exception as exc:   # a module holding a lock, a file, a generator: it cannot be copied
        raise Unsupported(f"the model cannot be copied ({type(exc).__name__})") from exc


def _edit_layer(model: nn.Module, edit: Edit):
    try:
        module = model.get_submodule(edit.layer)
    except AttributeError as exc:
        raise Unsupported(f"no module `{edit.layer}`") from exc
    if edit.op == "set":
        for name, value in edit.args:
            setattr(module, name, value)
        return
    if edit.op == "assign":   # the module that never ran goes where forward calls one
        model.set_submodule(edit.layer, model.get_submodule(edit.args[0]))
        return
    if edit.op == "resize":
        replacement = _rebuilt(module, **dict(edit.args))
    elif edit.op == "pool_before":
        rank = 2 if isinstance(module, nn.Linear) else 0
        replacement = nn.Sequential(_GlobalPool(), nn.Flatten(1), module) if rank else None
    elif edit.op == "pool_after":
        replacement = nn.Sequential(module, _GlobalPool())
    elif edit.op == "flatten_before" and isinstance(module, nn.Linear):
        replacement = nn.Sequential(nn.Flatten(1), _rebuilt(module, **{"in": edit.args[0]}))
    else:
        replacement = None
    if replacement is None:
        raise Unsupported(f"layer edit `{edit.op}` on {type(module).__name__}")
    model.set_submodule(edit.layer, replacement)


def _rebuilt(module: nn.Module, **sizes) -> nn.Module:
    """A module of the same class and settings, with its input (`in`) or output (`out`) size changed."""
    size_in, size_out = sizes.get("in"), sizes.get("out")
    with torch.device("meta"):
        if isinstance(module, nn.Linear):
            return type(module)(size_in or module.in_features, size_out or module.out_features,
                                bias=module.bias is not None)
        if isinstance(module, nn.modules.conv._ConvNd):
            in_channels, out_channels = size_in or module.in_channels, size_out or module.out_channels
            groups = module.groups if in_channels % module.groups == 0 and out_channels % module.groups == 0 else 1
            return type(module)(in_channels, out_channels, module.kernel_size, stride=module.stride,
                                padding=module.padding, dilation=module.dilation, groups=groups,
                                bias=module.bias is not None, padding_mode=module.padding_mode)
        if isinstance(module, nn.modules.batchnorm._NormBase):
            return type(module)(size_in, eps=module.eps, momentum=module.momentum, affine=module.affine,
                                track_running_stats=module.track_running_stats)
        if isinstance(module, nn.LayerNorm) and size_in:
            return nn.LayerNorm((*module.normalized_shape[:-1], size_in), eps=module.eps,
                                elementwise_affine=module.elementwise_affine)
        if isinstance(module, nn.GroupNorm) and size_in:
            return nn.GroupNorm(math.gcd(module.num_groups, size_in), size_in, eps=module.eps, affine=module.affine)
        if isinstance(module, nn.RNNBase):
            return type(module)(size_in or module.input_size, module.hidden_size, module.num_layers,
                                bias=module.bias, batch_first=module.batch_first, dropout=module.dropout,
                                bidirectional=module.bidirectional)
        if isinstance(module, nn.Embedding):
            return nn.Embedding(size_in or module.num_embeddings, size_out or module.embedding_dim,
                                padding_idx=module.padding_idx)
    raise Unsupported(f"cannot rebuild a {type(module).__name__} with other sizes")


class _GlobalPool(nn.Module):
    """Average over every axis after the channels, whatever the map's rank."""

    def forward(self, x):
        return x.mean(dim=tuple(range(2, x.dim()))) if x.dim() > 2 else x


def _activation_modules(activation: str | None) -> list[nn.Module]:
    return {"sigmoid": [nn.Sigmoid()], "softmax": [nn.Softmax(dim=1)], "log_softmax": [nn.LogSoftmax(dim=1)]}.get(
        activation or "", [])


def _rewire(model: nn.Module, before: list[Edit], after: list[Edit], ops: list[Edit], label_shape: tuple):
    """Input edits before the model's forward, output edits after it, some of its ops replaced during it. The
    forward is replaced on this copy only, so every layer keeps its name (findings compare by layer)."""
    original = model.forward

    def forward(*args, **kwargs):
        if args and before:
            args = (_prepared(args[0], before), *args[1:])
        with _ReplacedOps(ops) if ops else contextlib.nullcontext():
            output = original(*args, **kwargs)
        if not after:
            return output
        leaves = list(tensor_leaves(output))
        chosen = choose_output(leaves)
        return _finished(dict(leaves)[chosen] if chosen is not None else output, after, label_shape, model)

    model.forward = forward


def _prepared(x: torch.Tensor, edits: list[Edit]) -> torch.Tensor:
    for edit in edits:
        if edit.op == "permute":
            x = x.permute(*edit.args[0])
        elif edit.op == "swap":
            x = x.transpose(*edit.args)
        elif edit.op == "repeat_channels":
            x = x.expand(-1, edit.args[0], *x.shape[2:])
        elif edit.op == "cast":
            x = x.to(getattr(torch, edit.args[0]))
        elif edit.op == "pad":
            x = F.pad(x, [side for size in reversed(edit.args[0]) for side in (0, size)])
        else:
            raise Unsupported(f"input edit `{edit.op}`")
    return x


def _finished(output: torch.Tensor, edits: list[Edit], label_shape: tuple, model: nn.Module) -> torch.Tensor:
    for edit in edits:
        if edit.op == "permute":
            output = output.permute(*edit.args[0])
        elif edit.op == "activation":
            activation, axis = edit.args
            output = torch.sigmoid(output) if activation == "sigmoid" else getattr(F, activation)(
                output, dim=1 if axis is None else axis)
        elif edit.op == "resize_to_labels" and output.dim() > 2 and len(label_shape) >= output.dim() - 2:
            size = label_shape[-(output.dim() - 2):]   # the labels' spatial axes, with or without a channel axis
            output = F.interpolate(output, size=size, mode="bilinear" if len(size) == 2 else "nearest")
        elif edit.op == "modules":
            output = model.get_submodule(edit.args[0])(output)
        else:
            raise Unsupported(f"output edit `{edit.op}`")
    return output


class _ReplacedOps(TorchFunctionMode):
    """During the forward, the k-th call of an op is dropped (`drop_op`: it returns its input) or called with
    another `dim` (`op_dim`). Calls are counted as the tracer records them, so k comes from the trace."""

    def __init__(self, edits: list[Edit]):
        super().__init__()
        self.edits = {(edit.args[0], edit.args[1]): edit for edit in edits}
        self.seen: dict[str, int] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        count = self.seen.get(name, 0)
        self.seen[name] = count + 1
        edit = self.edits.get((name, count))
        if edit is None:
            return func(*args, **kwargs)
        if edit.op == "drop_op":
            return args[0]
        if edit.op == "swap_op":
            if edit.args[2] == "sigmoid":   # elementwise: no axis
                return torch.sigmoid(args[0])
            return getattr(F, edit.args[2])(args[0], dim=_dim(args, kwargs, args[0]))
        if edit.op == "flatten_op":   # a reshape that keeps axis 0 and folds the rest
            return args[0].reshape(args[0].shape[0], -1)
        if edit.op == "permute_op":   # a reshape that was meant as a transpose
            return args[0].permute(*edit.args[2])
        kwargs.pop("dim", None)
        return func(args[0], *args[2:], dim=edit.args[2], **kwargs) if len(args) > 1 and isinstance(
            args[1], int) else func(args[0], dim=edit.args[2], **kwargs)


def _dim(args, kwargs, tensor: torch.Tensor) -> int:
    """The `dim` a softmax-like call was given, or the one PyTorch picks when none was (1 for 2-D and 4-D)."""
    given = kwargs.get("dim", args[1] if len(args) > 1 and isinstance(args[1], int) else None)
    return given if given is not None else (0 if tensor.dim() in (0, 1, 3) else 1)


def train_step(model: nn.Module, specs: list[TensorMeta], example, labels: LabelInfo, loss: LossContract,
               post=None) -> str:
    """One real forward, loss and backward pass of an edited copy on a tiny batch; a line saying how it went.
    Raises Unsupported when the model is too large or its loss is not a `torch.nn` class."""
    loss_class = getattr(nn, loss.name, None)
    if loss_class is None or loss.framework not in ("torch", "onnx"):
        raise Unsupported(f"no torch.nn loss `{loss.name}`")
    parameters = sum(p.numel() for p in model.parameters())
    if parameters > MAX_PARAMETERS:
        raise Unsupported(f"{parameters / 1e6:.0f}M parameters is too large for a real step here")
    if not materialize(model):
        raise Unsupported("the copy cannot be given real weights here")
    full = specs[0].shape[0] if specs and specs[0].shape else STEP_BATCH
    # two samples, unless the labels are not one row per sample (positions flattened by the user's code)
    batch = min(STEP_BATCH, full) if not labels.shape or labels.shape[0] == full else full
    if example is not None:
        args, kwargs = example_tensors(example, batch)
    else:
        args, kwargs = make_inputs(specs, batch, real=True), {}
    target = _step_labels(labels, specs[0].shape[0] if specs and specs[0].shape else None, batch)
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # framework deprecation notes are not the step's business
        warnings.filterwarnings("error", message=".*broadcast", category=UserWarning)   # the step is not right
        output = model(*args, **kwargs)
        output = post(output) if post is not None else output
        leaves = list(tensor_leaves(output))
        chosen = choose_output(leaves)
        prediction = dict(leaves)[chosen] if chosen is not None else output
        value = loss_class(**dict(loss.options))(prediction, target)
    value.backward()
    if not torch.isfinite(value):
        raise RuntimeError(f"the loss is {value.item()}")
    return f"one training step on {batch} samples: loss {value.item():.4g}, backward ran"


def _step_labels(labels: LabelInfo, input_batch: int | None, batch: int) -> torch.Tensor:
    """The user's label values for the first `batch` samples (zeros, a valid class id, when only a shape is known)."""
    if labels.array is not None:
        values = torch.as_tensor(labels.array)
    else:
        values = torch.zeros(labels.shape, dtype=getattr(torch, labels.dtype, torch.float32))
    if values.dim() and values.shape[0] == input_batch:
        values = values[:batch]
    return values


def describe_failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(exc)}"
