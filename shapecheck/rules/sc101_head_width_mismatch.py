from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import (
    class_axis,
    ids_under_binary_loss,
    index_target_shape,
    loss_ready,
    new_head,
    output_phrase,
    same_batch,
)
from shapecheck.shapes import fmt, is_int


def label_width(ctx) -> int | None:
    """How many outputs per sample the labels call for, or None when their layout is not a width question."""
    out, lab = ctx.output.shape, ctx.labels.shape
    axis = class_axis(ctx)
    rest = index_target_shape(ctx)
    if len(lab) == len(out) and lab[:axis] + lab[axis + 1:] == rest:
        return lab[axis]
    if not ctx.loss.wants_class_indices and lab == rest:
        return 1
    return None


class HeadWidthMismatch(Rule):
    code = "SC101"
    name = "head-width-mismatch"
    category = "output_vs_loss"
    summary = "The model outputs a different number of values per sample than the labels hold"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC102", "SC107", "SC405"})

    def check(self, ctx):
        if not loss_ready(ctx) or not same_batch(ctx) or len(ctx.output.shape) < 2:
            return
        if ctx.labels.dtype == "str":
            return  # names, not numbers: no width to compare
        outputs, width = ctx.output.shape[class_axis(ctx)], label_width(ctx)
        if width is None or width == outputs or outputs == 1 or (ctx.loss.wants_class_indices and width == 1):
            return
        head = ctx.head
        unit = "position" if len(ctx.output.shape) > 2 else "sample"   # a time step or pixel of a dense output
        per_sample = ("1 target" if width == 1 else f"{width} targets") + f" per {unit}"
        message = f"{output_phrase(ctx)}; labels have shape {fmt(ctx.labels.shape)} ({per_sample}, not {outputs})"
        if class_ids_for_binary_loss(ctx, outputs):   # a multi-class head is right; the loss or the labels are not
            stats = ctx.labels.stats
            yield self.finding(message + f": they hold class ids {int(stats.minimum)}..{int(stats.maximum)}", head,
                               [ids_under_binary_loss(ctx, outputs)], subject=ctx.loss_subject())
            return
        fixes = []
        if head is not None:
            fixes.append(new_head(ctx, head, width, f"Replace the head with {width} output{'s' if width > 1 else ''}"))
        lab = ctx.labels.shape
        if len(lab) == len(ctx.output.shape) - 1 and not ctx.loss.lenient:
            cast = (("cast", "float32"),) if is_int(ctx.labels.dtype) else ()
            fixes.append(Fix("Then match the labels to the output", ctx.recipes.labels_steps(*cast, ("unsqueeze", 1)),
                             joins=True))
        if ctx.loss.family == "regression" and width == 1:   # the labels may be the part that lost its columns
            axis = class_axis(ctx) % len(ctx.output.shape)
            wanted = (*lab[:axis], outputs, *lab[axis + (len(lab) == len(ctx.output.shape)):])
            fixes.append(Fix(f"Or, if the model should predict {outputs} values, give each {unit} {outputs} targets: "
                             f"labels of shape {fmt(wanted)}"))
        elif ctx.loss.family == "binary" and outputs == 2 and width == 1:
            fixes.append(Fix("Or keep two outputs and train with class indices", ctx.recipes.loss("CrossEntropyLoss")))
        yield self.finding(message, head, fixes)


def class_ids_for_binary_loss(ctx, outputs: int) -> bool:
    """Integer labels 0..C-1 (more than 0/1) under a binary loss, next to a C-way output."""
    stats = ctx.labels.stats
    return (ctx.loss.family == "binary" and stats is not None and stats.integral and stats.minimum >= 0
            and 1 < stats.maximum < outputs)
