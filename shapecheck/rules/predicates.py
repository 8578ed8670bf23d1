"""Predicates several rules share (what counts as class ids, which op folds the batch, ...).

Rules never import each other: whatever two rules both need lives here or in `common`."""

from __future__ import annotations

import itertools
import math

from shapecheck.rules.common import (
    failed_layer,
    index_target_shape,
    loss_ready,
    same_batch,
)


def _expected_rank(ctx) -> int:
    """The output rank the labels call for."""
    lab = ctx.labels.shape
    if ctx.loss.wants_class_indices:
        trailing = 1 if ctx.loss.lenient and len(lab) >= 2 and lab[-1] == 1 else 0
        return len(lab) - trailing + 1
    return 2 if _one_value_per_sample(ctx) else max(len(lab), 2)


def _one_value_per_sample(ctx) -> bool:
    """Labels like [N], [N, 1] or [N, 1, 1]."""
    return all(d == 1 for d in ctx.labels.shape[1:])


def _one_row_per_sample(ctx) -> bool:
    """One-hot or multi-hot labels [N, C] for an output whose class axis has C entries."""
    lab, out = ctx.labels.shape, ctx.output.shape
    return len(lab) == 2 and not ctx.loss.wants_class_indices and lab[-1] == out[ctx.loss.class_axis]


def extra_axes_source(ctx):
    """(kind, layer) when the output has more axes than the labels call for: the recurrent layer, the feature map
    or the input whose axes were never reduced."""
    if not loss_ready(ctx) or not same_batch(ctx) or ctx.labels.dtype == "str":
        return None
    if len(ctx.output.shape) <= _expected_rank(ctx) or index_target_shape(ctx)[1:] == ctx.labels.shape[1:]:
        return None
    for op in ctx.trace.producer_chain(ctx.trace.output_op):
        layer = ctx.trace.layer(op.layer)
        if layer is None:
            continue
        if layer.kind == "rnn":
            return ("sequence", layer) if layer.config.get("return_sequences", True) else None
        # a 1-D map ([N, L, C] or [N, C, L]) only counts against labels of one value or one row per sample
        min_rank = 3 if _one_value_per_sample(ctx) or _one_row_per_sample(ctx) else 4
        if layer.kind in ("conv", "pool") and layer.output is not None and len(layer.output.shape) >= min_rank:
            return "map", layer
        if layer.kind == "linear" and layer.inputs and len(layer.inputs[0].shape) >= 3 and \
                layer.input_producers[:1] == [-1]:
            return "input", layer
    return None


def moved_last(rank: int) -> tuple[int, ...]:
    """[N, H, W, C] -> [N, C, H, W]."""
    return (0, rank - 1, *range(1, rank - 1))


def moved_first(rank: int) -> tuple[int, ...]:
    """[N, C, H, W] -> [N, H, W, C]."""
    return (0, *range(2, rank), 1)


def axis_order(out: tuple, lab: tuple) -> tuple[int, ...] | None:
    """The permutation that turns the output's shape into the labels' (same batch, same sizes, another order);
    the channel moves are tried first, since several orders fit when sizes repeat."""
    if len(out) != len(lab) or len(out) < 3 or out == lab or out[0] != lab[0] or sorted(out) != sorted(lab):
        return None
    candidates = [moved_last(len(out)), moved_first(len(out)), *itertools.permutations(range(len(out)))]
    return next((p for p in candidates if p[0] == 0 and tuple(out[i] for i in p) == lab), None)


def softmax_axis(op, rank: int) -> int | None:
    """The axis a softmax ran over; PyTorch's implicit choice when no `dim` was given (0 for ranks 0, 1, 3)."""
    dim = op.args.get("dim")
    if dim is None and op.args.get("args"):
        dim = op.args["args"][0]
    if dim is None:
        dim = 0 if rank in (0, 1, 3) else 1
    return dim % rank if rank and isinstance(dim, int) else None


def channel_mismatch(ctx):
    """(layer, expected channels, received channels) for a conv that stopped on its channel count."""
    layer = failed_layer(ctx, "conv")
    if layer is None:
        return None
    x = layer.inputs[0]
    expected = layer.config.get("in_channels")
    if len(x.shape) < 3 or x.dtype != layer.weight.dtype or expected is None:
        return None
    received = x.shape[layer.channel_axis]
    return None if received == expected else (layer, expected, received)


RESHAPES = ("view", "reshape", "flatten", "unflatten")


def folding_op(trace, batch: int):
    """The most upstream op on the output's path that takes the batch in and puts something else out."""
    culprit = None
    for op in trace.producer_chain(trace.output_op):
        if op.inputs and op.inputs[0].shape[:1] == (batch,) and op.outputs and \
                op.outputs[0].shape[:1] not in ((batch,), (-1,)):   # -1: a dim shape inference left open
            culprit = op
    return culprit


def flattened_on_purpose(ctx) -> bool:
    """Output rows = batch x positions, and the labels hold those positions: flattened the same way (a token-level
    head), or still [N, L] (then the labels need the same flatten, which the loss rules say)."""
    out, labels = ctx.trace.output.shape, ctx.labels
    if not out or out[0] % ctx.trace.batch or labels is None:
        return False
    per_position = len(labels.shape) >= 2 and labels.shape[0] == ctx.trace.batch and \
        math.prod(labels.shape[:2]) == out[0]
    return labels.shape[:1] == out[:1] or per_position


def exported_batch_constant(trace, op) -> bool:
    """A Reshape in an exported graph whose target holds the export's batch of 1."""
    return trace.framework == "onnx" and op.outputs[0].shape[:1] == (1,)


def next_linear(ctx, op):
    """The Linear that consumes an op's output, if one does."""
    for later in ctx.trace.ops[op.index + 1:]:
        if later.name == "linear" and op.index in later.producers:
            layer = ctx.trace.layer(later.layer)
            return layer if layer is not None and layer.kind == "linear" else None
    return None


def reads_time_major(layer) -> bool:
    """Recurrent, attention and transformer layers default to (time, batch, features) unless batch_first=True."""
    return (layer.kind == "rnn" or "batch_first" in layer.config) and not layer.config.get("batch_first", False)


REDUCTIONS = ("mean", "sum", "amax", "amin", "max", "min", "prod", "std", "var", "logsumexp", "median")


def batch_reduction(trace):
    """The reduction on the way to the output (or to the failed op) whose input's axis 0 follows the batch (N, or
    N·k after a cat) while its output does not, comparing the traces at N and N+1."""
    alternate = trace.alternate
    if alternate is None or trace.batch is None:
        return None
    used = _ancestors(trace, [trace.output_op, *(trace.failure.producers if trace.failure else [])])
    for op, other in zip(trace.ops, alternate.ops):
        if op.name not in REDUCTIONS or op.index not in used or not op.inputs or not op.outputs:
            continue
        x, y = op.inputs[0].shape, other.inputs[0].shape if other.inputs else ()
        out, other_out = op.outputs[0].shape, other.outputs[0].shape if other.outputs else ()
        if x and y and x[0] != y[0] and x[1:] == y[1:] and out == other_out and len(out) < len(x):
            return op
    return None


def _ancestors(trace, starts) -> set[int]:
    """Every op whose result reaches one of `starts` (the output, the failed op's inputs)."""
    seen, stack = set(), [i for i in starts if i is not None and i >= 0]
    while stack:
        index = stack.pop()
        if index in seen or index >= len(trace.ops):
            continue
        seen.add(index)
        stack.extend(p for p in trace.ops[index].producers if p is not None and p >= 0)
    return seen
