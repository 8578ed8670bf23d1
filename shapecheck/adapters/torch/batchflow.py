"""Prove from the recorded ops that no sample's values reach another sample's output, so the batch-mixing probe
(two real forward passes) can be skipped.

Every tensor is followed through the ops of the traces at batch N and N + 1: the axis that grows with the batch
holds the samples, `k` rows per sample when the batch is folded into it (`[N * windows, ...]`). An op keeps samples
apart when it computes nothing along that axis (a convolution's batch, a linear layer's rows, a softmax over
another axis) and its outputs hold the samples the same way. One op shapecheck cannot vouch for (an RNN, a custom
kernel, a reduction over the batch, a reshape that interleaves samples) leaves the question to the probe, so an
unknown op costs time, never a missed bug.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from shapecheck.shapes import batch_axis
from shapecheck.trace import Op, Trace

ALL_AXES = None   # an op that couples every axis of an input

# Op names are canonical (`shapecheck.ops`): `cat` stands for `concat` too, `clamp` for `clip`.
# Ops that compute each output element from the elements at the same (broadcast) position.
_ELEMENTWISE = {
    "add", "sub", "mul", "div", "true_divide", "floor_divide", "remainder", "fmod", "pow", "maximum", "minimum",
    "where", "masked_fill", "clamp", "lerp", "addcmul", "addcdiv", "atan2", "hypot", "copy_",
    "__add__", "__radd__", "__iadd__", "__sub__", "__rsub__", "__isub__", "__mul__", "__rmul__", "__imul__",
    "__truediv__", "__rtruediv__", "__itruediv__", "__floordiv__", "__rfloordiv__", "__mod__", "__pow__",
    "__rpow__", "__neg__", "__pos__", "__abs__", "__and__", "__or__", "__xor__", "__invert__", "__rand__", "__ror__",
    "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "eq", "ne", "lt", "le", "gt", "ge",
    "logical_and", "logical_or", "logical_not", "logical_xor", "isnan", "isinf", "isfinite", "nan_to_num",
    "relu", "relu6", "leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "softsign",
    "hardswish", "hardsigmoid", "hardtanh", "hardshrink", "softshrink", "tanhshrink", "threshold", "prelu", "rrelu",
    "logsigmoid", "sigmoid", "tanh", "exp", "exp2", "expm1", "log", "log2", "log10", "log1p", "sqrt", "rsqrt",
    "square", "reciprocal", "abs", "neg", "sign", "sin", "cos", "tan", "erf", "erfc", "floor", "ceil", "round",
    "trunc", "frac", "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "float", "double", "half", "bfloat16", "int", "long", "bool", "to", "type", "type_as", "contiguous", "clone",
    "detach", "requires_grad_", "bernoulli", "bernoulli_", "fill_", "zero_", "pad",
}
# Ops that only move values: axes are reordered, added, dropped, sliced or split, never combined.
_MOVES = {
    "permute", "transpose", "swapaxes", "swapdims", "t", "movedim", "moveaxis", "squeeze", "unsqueeze", "expand",
    "expand_as", "broadcast_to", "repeat", "tile", "narrow", "chunk", "split", "split_with_sizes", "tensor_split",
    "unbind", "cat", "stack", "__getitem__",
}
# Reshapes keep the flat order: samples stay apart when each still owns the same run of elements.
_RESHAPES = {"view", "reshape", "flatten", "unflatten", "view_as", "reshape_as"}
# Ops whose output holds none of the input's values (only its shape or dtype).
_FRESH = {"zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "randint_like",
          "new_zeros", "new_ones", "new_empty", "new_full", "size", "dim"}
# Ops that compute along every axis but the first (batch, channels, positions...): convolutions, pools, norms.
_BATCH_FIRST = {
    "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "max_pool1d",
    "max_pool2d", "max_pool3d", "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d",
    "adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "adaptive_max_pool3d", "lp_pool1d", "lp_pool2d", "batch_norm", "instance_norm", "group_norm", "interpolate",
    "upsample", "pixel_shuffle", "pixel_unshuffle", "local_response_norm", "embedding_bag",
}
# Ops that compute along the axes their `dim` names (the batch must be elsewhere).
ALONG_DIM = {"softmax", "log_softmax", "softmin", "sum", "mean", "amax", "amin", "max", "min", "prod",
              "logsumexp", "cumsum", "cumprod", "argmax", "argmin", "all", "any", "flip", "normalize", "glu"}
_DEFAULT_DIM = {"normalize": 1, "glu": -1}
_MATMUL = {"matmul", "mm", "bmm", "__matmul__", "__rmatmul__"}


@dataclass(frozen=True)
class Samples:
    """Where a tensor holds the samples: along `axis`, `per_sample` consecutive rows each."""

    axis: int
    per_sample: int


def unproven_op(primary: Trace, alternate: Trace | None, batch: int) -> Op | None:
    """The first op that may let one sample's values reach another's output (None: samples provably stay apart).
    `primary` and `alternate` are traces of the same forward at batch N and N + 1."""
    if alternate is None or alternate.failure is not None or len(alternate.ops) != len(primary.ops):
        return primary.ops[0] if primary.ops else None
    carries: list[bool] = []   # per op: its outputs hold sample values
    for op, twin in zip(primary.ops, alternate.ops):
        if op.name != twin.name or len(op.inputs) != len(twin.inputs) or len(op.outputs) != len(twin.outputs):
            return op
        holding = []
        for index, (meta, other, producer) in enumerate(zip(op.inputs, twin.inputs, op.producers)):
            samples = samples_of(meta.shape, other.shape, batch)
            if producer is None and samples is not None:
                return op   # batch-sized values that reached the op outside the recorded ops
            if producer == -1 and samples is not None or producer is not None and producer >= 0 and carries[producer]:
                if samples is None:
                    return op
                holding.append((index, meta.shape, samples))
        if not holding or op.name in _FRESH:
            carries.append(False)   # computed from parameters and constants only
            continue
        outputs = [samples_of(a.shape, b.shape, batch) for a, b in zip(op.outputs, twin.outputs)]
        if not outputs or None in outputs or not _keeps_samples_apart(op, holding, outputs):
            return op
        carries.append(True)
    return None


def samples_of(at_batch: tuple, at_next: tuple, batch: int) -> Samples | None:
    """The axis holding the samples: the only one that grows with the batch, by a whole number of rows each."""
    axis = batch_axis(at_batch, at_next)
    if axis is None:
        return None
    rows, remainder = divmod(at_batch[axis], batch)
    if remainder or rows < 1 or at_next[axis] != (batch + 1) * rows:
        return None
    return Samples(axis, rows)


def _keeps_samples_apart(op: Op, holding: list, outputs: list[Samples]) -> bool:
    name = _out_of_place(op.name)
    if name in _RESHAPES:   # `view_as(other)` with samples in both: left to the probe
        return len(holding) == 1 and _same_runs(holding[0][1], holding[0][2], op.outputs[0].shape, outputs[0])
    rows = {s.per_sample for s in outputs} | {samples.per_sample for _, _, samples in holding}
    if len(rows) != 1:   # folded differently in and out: a reshape in disguise
        return False
    if name in _ELEMENTWISE or name in _MOVES:
        return name != "__getitem__" or (len(op.inputs) == 1 and not op.args.get("fancy"))
    for index, shape, samples in holding:
        coupled = _coupled_axes(op, index, len(shape))
        if coupled is ALL_AXES or samples.axis in coupled:
            return False
    return True


def _same_runs(shape_in: tuple, samples_in: Samples, shape_out: tuple, samples_out: Samples) -> bool:
    """A reshape keeps samples apart when, in the flat order, each sample owns runs of the same length at the same
    places before and after: as many runs (the product of the axes before the batch axis), each as long."""
    def runs(shape, samples):
        return math.prod(shape[:samples.axis]), samples.per_sample * math.prod(shape[samples.axis + 1:])

    return runs(shape_in, samples_in) == runs(shape_out, samples_out)


def _out_of_place(name: str) -> str:
    """`add_` computes what `add` does, in place."""
    return name[:-1] if name.endswith("_") and not name.startswith("__") and name[:-1] in _ELEMENTWISE else name


def _coupled_axes(op: Op, index: int, rank: int) -> set[int] | None:
    """The axes of input `index` along which the op combines values (None: it may combine along any)."""
    name = op.name
    if name in _BATCH_FIRST:
        return set(range(1, rank)) if index == 0 else ALL_AXES
    if name == "linear":
        return {rank - 1} if index == 0 else ALL_AXES
    if name == "embedding":
        return set() if index == 0 else ALL_AXES
    if name in ("layer_norm", "rms_norm"):
        trailing = len(_ints(op.args.get("normalized_shape", op.args.get("args", []))))
        return set(range(rank - trailing, rank)) if index == 0 and trailing else ALL_AXES
    if name in ALONG_DIM:
        dims = _dims(op, rank)
        return dims if index == 0 and dims is not None else ALL_AXES
    if name in _MATMUL:
        return _matmul_axes(index, rank, len(op.inputs))
    if name == "addmm" or name == "baddbmm":
        return set() if index == 0 else _matmul_axes(index - 1, rank, 2)
    if name == "scaled_dot_product_attention":
        return {rank - 2, rank - 1} if index < 3 else set()
    if name == "multi_head_attention_forward":   # (sequence, batch, features): attention runs along the sequence
        return ({0, rank - 1} if rank == 3 else ALL_AXES) if index < 3 else set()   # then masks, per sample
    if name == "roll":
        return _roll_axes(op, rank) if index == 0 else ALL_AXES
    if name == "einsum":
        return _einsum_axes(op.args.get("equation", ""), index, rank)
    return ALL_AXES


def _roll_axes(op: Op, rank: int) -> set[int] | None:
    """`roll(x, shifts, dims)` moves values along `dims`; without dims it rolls the flattened tensor."""
    dims = op.args.get("dims")
    positional = op.args.get("args", [])
    if dims is None and len(positional) == 2 and not isinstance(positional[0], int):
        dims = positional[1]
    if dims is None or not rank:
        return ALL_AXES
    return {d % rank for d in _ints(dims if isinstance(dims, (list, tuple)) else [dims])}


def _matmul_axes(index: int, rank: int, count: int) -> set[int] | None:
    if count != 2:
        return ALL_AXES
    if rank == 1:
        return {0}
    return {rank - 1} if index == 0 else {rank - 2}


def _einsum_axes(equation: str, index: int, rank: int) -> set[int] | None:
    """Axes whose letter is summed away (absent from the output)."""
    inputs, arrow, output = equation.replace(" ", "").partition("->")
    operands = inputs.split(",")
    if not arrow or "." in equation or index >= len(operands) or len(operands[index]) != rank:
        return ALL_AXES
    return {axis for axis, letter in enumerate(operands[index]) if letter not in output}


def _dims(op: Op, rank: int) -> set[int] | None:
    """The `dim` argument of a reduction or normalisation, as non-negative axes (None: every axis)."""
    dims = op.args.get("dim", op.args.get("dims"))
    if dims is None:
        positional = _ints(op.args.get("args", []))
        dims = positional if positional else _DEFAULT_DIM.get(op.name)
        if op.name == "normalize" and positional:   # normalize(x, p, dim): p may be an int too
            return ALL_AXES
    if dims is None:
        return ALL_AXES
    return {d % rank for d in _ints(dims if isinstance(dims, (list, tuple)) else [dims])} if rank else ALL_AXES


def _ints(values) -> list[int]:
    return [v for v in values if isinstance(v, int) and not isinstance(v, bool)]
