"""Helpers shared by several rules: describing tensors, finding the head, reading label statistics."""

from __future__ import annotations

import math

from shapecheck import labels as labels_mod
from shapecheck.edits import Edit, ModelOp
from shapecheck.findings import Fix
from shapecheck.rules import Context
from shapecheck.shapes import TensorMeta, fmt
from shapecheck.trace import TRANSPARENT_OPS, Layer, Op

ACTIVATIONS = {"softmax", "log_softmax", "sigmoid", "tanh", "hardsigmoid", "clamp"}   # canonical op names
BOUNDED = ("sigmoid", "softmax", "hardsigmoid", "clamp")   # outputs already inside [0, 1]


def ref(ctx: Context, layer_name: str) -> str:
    """A layer's name as messages print it, in backticks."""
    return f"`{ctx.recipes.display(layer_name)}`"


def head_activation(ctx: Context, outputs: int) -> str | None:
    """The activation a new head needs for this loss: none for logits or regression, else sigmoid or softmax."""
    loss = ctx.loss
    if loss is None or loss.family == "regression" or loss.input_space != "probabilities":
        return None
    return "sigmoid" if outputs == 1 or loss.family == "binary" else "softmax"


def new_head(ctx: Context, head: Layer, outputs: int, title: str, certain: bool = True) -> Fix:
    """`title`, with the recipe for a head with `outputs` outputs (`certain=False`: a lower bound read from the
    label values of one batch). A convolution whose maps are pooled into the output is a feature extractor with
    no classifier (an exported embedding): add one instead of resizing it."""
    activation = head_activation(ctx, outputs)
    out = head.output.shape if head.output else ()
    features = ctx.output.shape[1] if ctx.output is not None and len(ctx.output.shape) == 2 else 0
    # a wide pooled map is an embedding; a conv with about as many channels as classes is the classifier itself
    # (timm says which layer is the classifier, a 1x1 conv in DLA and similar: its reset_classifier resizes it)
    classifier_known = ctx.trace.library.startswith("timm:")
    if head.kind == "conv" and len(out) > 2 and features >= max(32, 4 * outputs) and not classifier_known:
        return Fix(f"The model outputs {features} pooled features and no classifier: add one with {outputs} "
                   f"output{'s' if outputs > 1 else ''}", ctx.recipes.add_classifier(features, outputs, activation),
                   certain=certain)
    return Fix(title, ctx.recipes.replace_head(head, outputs, activation), certain=certain)


def ids_under_binary_loss(ctx, outputs: int) -> Fix:
    """Class ids under a binary loss: a class-index loss, unless the model's configuration declares multi-label
    classification, where the labels must become one multi-hot row per sample."""
    if ctx.trace.task == "multi_label":
        return Fix(f"The model's configuration declares multi-label classification: give each sample a multi-hot "
                   f"row of {outputs}", ctx.recipes.one_hot("labels", outputs))
    return Fix(f"Train the {outputs}-class output with a class-index loss", ctx.recipes.class_index_loss(ctx.loss))


def output_phrase(ctx: Context) -> str:
    """"`BCEWithLogitsLoss` input from `fc` has shape [16, 1000]"."""
    head = ctx.head
    source = f" from {ref(ctx, head.name)}" if head is not None else ""
    return f"`{ctx.loss.name}` input{source} has shape {fmt(ctx.output.shape)}"


def loss_ready(ctx: Context) -> bool:
    """The output, the loss and the labels are all known."""
    return ctx.output is not None and ctx.loss is not None and ctx.labels is not None


def same_batch(ctx: Context) -> bool:
    out, lab = ctx.output.shape, ctx.labels.shape
    return bool(out) and bool(lab) and out[0] == lab[0]


def class_count(ctx: Context) -> int | None:
    """The size of the class axis as the loss sees the output (Keras squeezes or adds a trailing axis of 1)."""
    if ctx.output is None or ctx.loss is None:
        return None
    seen = ctx.loss_check.seen_output if ctx.loss_check is not None else None
    shape = seen if seen is not None else ctx.output.shape
    axis = ctx.loss.class_axis
    return shape[axis] if len(shape) >= 2 else None


def class_axis(ctx: Context) -> int:
    """The output's class axis as a non-negative index (1 in PyTorch, the last in Keras)."""
    return ctx.loss.class_axis % len(ctx.output.shape)


def index_target_shape(ctx: Context) -> tuple[int, ...]:
    """What a class-index loss expects for this output: the output without its class axis."""
    shape = list(ctx.output.shape)
    if len(shape) >= 2:   # a rank-1 output is one unbatched sample's classes: the target is a scalar
        del shape[ctx.loss.class_axis]
    else:
        shape = []
    return tuple(shape)


# Ops whose result is the same kind of value as their input: probabilities averaged over time steps or models,
# resized, stacked or maxed are still probabilities, and a loss on logits still applies its activation again.
KIND_PRESERVING = frozenset({
    "mean", "amax", "amin", "max", "min", "median", "cat", "stack", "index_select", "gather", "flip", "roll",
    "repeat", "tile", "interpolate", "upsample", "upsample_bilinear2d", "upsample_nearest2d",
})


def final_activation(ctx: Context) -> Op | None:
    """The activation whose values reach the output: the walk back from the output passes ops that only move
    values (reshapes, dropout) or keep their kind (a mean over time steps, a resize, a concatenation)."""
    for op in ctx.trace.producer_chain(ctx.trace.output_op):
        if op.name in ACTIVATIONS:
            return op
        if op.name not in TRANSPARENT_OPS and op.name not in KIND_PRESERVING:
            return None
    return None


def op_site(ctx: Context, op: Op) -> tuple[str, Layer | None]:
    """How to name where an op runs: its module when it is one (`token.1`), else the forward that calls it."""
    layer = ctx.trace.layer(op.layer)
    if layer is not None and layer.name and layer.kind == "activation":
        return f"{ref(ctx, layer.name)} ({layer.type})", layer
    if layer is not None and ctx.trace.framework == "onnx":
        owner = f" of `{layer.name}`" if layer.name != layer.type else ""   # a top-level `/Reshape` node
        return f"the `{layer.type}` node{owner}", layer
    if layer is not None and layer.name and ctx.trace.framework == "keras":   # Dense(..., activation="softmax")
        return f'{ref(ctx, layer.name)} ({layer.type}, activation="{op.spelling}")', layer
    owner = ctx.recipes.display(layer.name) if layer is not None and layer.name else ctx.trace.model_class
    return f"`{op.spelling}` in `{owner}.forward`", None


def op_edit(ctx: Context, op: Op, change: ModelOp, *args) -> tuple[Edit, ...]:
    """An edit of one recorded op: `drop_op` (it returns its input), `swap_op` (another function), `op_dim`
    (another axis). The op is named by its function as the user's code spells it, and how many calls of it came
    before in the forward."""
    ordinal = sum(1 for other in ctx.trace.ops[:op.index] if other.spelling == op.spelling)
    return (Edit("layer", change, (op.spelling, ordinal, *args), op.layer),)


def index_labels_match(ctx: Context) -> bool:
    """The labels have the class-index shape for this output (Keras also takes a trailing axis of 1)."""
    expected = index_target_shape(ctx)
    return ctx.labels.shape == expected or (ctx.loss.lenient and ctx.labels.shape == expected + (1,))


def class_ids(ctx: Context):
    """Label statistics when the labels are class indices for a class-index loss (values known)."""
    labels = ctx.labels
    if labels is None or labels.stats is None or ctx.loss is None or not ctx.loss.wants_class_indices:
        return None
    if ctx.output is not None and not index_labels_match(ctx):
        return None
    skipped = ctx.loss.option("ignore_index")
    stats = labels.stats if skipped is None else labels_mod.without_value(labels, skipped).stats
    return stats if stats is not None and stats.integral else None


def values_text(stats) -> str:
    if stats.distinct:
        shown = ", ".join(_number(v) for v in stats.distinct[:8])
        more = ", ..." if len(stats.distinct) > 8 else ""
        return f"{{{shown}{more}}}"
    return f"{_number(stats.minimum)}..{_number(stats.maximum)}"


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def failed_layer(ctx: Context, kind: str, needs_weight: bool = True) -> Layer | None:
    """The layer of `kind` where the forward pass stopped, with its recorded input (and weight)."""
    failure = ctx.trace.failure
    layer = ctx.trace.layer(failure.layer) if failure is not None else None
    if layer is None or layer.kind != kind or not layer.inputs or (needs_weight and layer.weight is None):
        return None
    return layer


def class_id_stats(ctx: Context):
    """(label statistics, class count) when class-index labels with known values meet a classifier output."""
    stats, classes = class_ids(ctx), class_count(ctx)
    return (stats, classes) if stats is not None and classes is not None else None


def per_class_rows(ctx: Context):
    """Statistics of [N, C] per-class targets (one-hot or multi-hot rows) for a softmax loss, values known."""
    labels, loss = ctx.labels, ctx.loss
    if loss is None or loss.family != "categorical" or labels is None or labels.stats is None:
        return None
    if ctx.output is not None and labels.shape != ctx.output.shape:
        return None
    return labels.stats.rows(loss.class_axis)


def fed_by_model_input(ctx: Context, layer: Layer) -> bool:
    """The layer's first input is the model input itself, possibly reshaped on the way."""
    producers = layer.input_producers
    if not producers or producers[0] is None:
        return False
    if producers[0] == -1:
        return True
    chain = list(ctx.trace.producer_chain(producers[0]))
    return all(op.name in TRANSPARENT_OPS for op in chain) and chain[-1].producers[:1] == [-1]

def from_phrase(ctx: Context, layer: Layer) -> str:
    producer = ctx.trace.upstream_layer(layer.input_producers[0] if layer.input_producers else None, layer.name)
    if producer is not None:
        return f" from {ref(ctx, producer.name)}"
    return " from the model input" if fed_by_model_input(ctx, layer) else ""


# How ops at the end of a model bound its output: interval arithmetic over (low, high).
_UNBOUNDED = (-math.inf, math.inf)


def sigmoid(value: float) -> float:
    """The logistic function, exact at the infinities (a sigmoid of a sigmoid stays within (0.5, 0.731))."""
    return 1.0 / (1.0 + math.exp(-value)) if value >= 0 else math.exp(value) / (1.0 + math.exp(value))


def _abs_range(low, high):
    return (low, high) if low >= 0 else (-high, -low) if high <= 0 else (0.0, max(-low, high))


def _sum_range(low, high):
    return (0.0, math.inf) if low >= 0 else (-math.inf, 0.0) if high <= 0 else _UNBOUNDED


_RANGE_OPS = {
    "abs": _abs_range, "norm": lambda low, high: (0.0, math.inf),
    "neg": lambda low, high: (-high, -low),
    "exp": lambda low, high: (math.exp(low) if low > -math.inf else 0.0, math.inf if high > 700 else math.exp(high)),
    "sigmoid": lambda low, high: (sigmoid(low), sigmoid(high)), "hardsigmoid": lambda low, high: (0.0, 1.0),
    "softmax": lambda low, high: (0.0, 1.0), "tanh": lambda low, high: (math.tanh(low), math.tanh(high)),
    "relu": lambda low, high: (max(low, 0.0), max(high, 0.0)),
    "sum": _sum_range, "mean": lambda low, high: (low, high),
}


def output_bounds(ctx: Context) -> tuple[float, float, Op] | None:
    """The range the output's final ops confine it to, and the op that bounds it last; None when unbounded.
    Follows the ops back from the output while they are ones whose range is known (`exp(-||a - b||)`)."""
    chain = []
    for op in ctx.trace.producer_chain(ctx.trace.output_op):
        if op.name in TRANSPARENT_OPS:
            continue
        if op.name not in _RANGE_OPS:
            break
        chain.append(op)
    (low, high), bounding = _UNBOUNDED, None
    for op in reversed(chain):
        new = _RANGE_OPS[op.name](low, high)
        if new != (low, high):
            (low, high), bounding = new, op
    return None if bounding is None or (low, high) == _UNBOUNDED else (low, high, bounding)


IGNORE_INDEX = -100


def ignore_marker(stats, classes: int) -> float | None:
    """One value outside 0..C-1 next to at least two valid ids: a marker for pixels or samples to skip (255 for
    VOC's void, 225, -1 for padding), not a class. The marker, or None."""
    values = stats.distinct
    if len(values) < 3:
        return None
    inside = [v for v in values if 0 <= v < classes and v != IGNORE_INDEX]
    outside = [v for v in values if not 0 <= v < classes and v != IGNORE_INDEX]
    return outside[0] if len(outside) == 1 and len(inside) >= 2 else None


def fits_declared(given: tuple, wanted: tuple) -> bool:
    """Same rank, and every size the model fixes (-1 is free) is the size given."""
    return len(given) == len(wanted) and all(w in (-1, g) for g, w in zip(given, wanted))


def unlike_declared(given: TensorMeta, wanted: TensorMeta) -> bool:
    """An input of the declared rank whose per-sample sizes differ from the ones the model fixes."""
    return len(given.shape) == len(wanted.shape) and not fits_declared(given.shape[1:], wanted.shape[1:])


def requested_sizes(failure) -> list[int]:
    """The sizes a failed reshape asked for (`view(64, 128, 4, 4)`), as recorded with the failure."""
    return [d for d in failure.args.get("args", []) if isinstance(d, int)]


def measured(ctx: Context):
    """What the training-signal audit measured on this head (`shapecheck.audit.HeadAudit`), or None."""
    audit = ctx.trace.audit
    return audit.head(ctx.trace.output_path) if audit is not None else None


def site(layer: str, ctx: Context) -> str:
    """Where an op ran, for messages: "in `encoder`", or "in `Net.forward`" for the model's own code."""
    return f"in {ref(ctx, layer)}" if layer else f"in `{ctx.trace.model_class or 'the model'}.forward`"
