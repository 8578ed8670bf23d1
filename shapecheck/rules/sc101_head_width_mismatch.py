from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import (
    class_axis,
    index_labels_match,
    index_target_shape,
    loss_ready,
    new_head,
    output_phrase,
    same_batch,
)
from shapecheck.rules.predicates import (
    class_ids_for_binary_loss,
    colour_channels,
    looks_like_class_ids,
    one_based_one_hot,
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
    explains = frozenset({"loss:shape"})

    def check(self, ctx):
        if not loss_ready(ctx) or not same_batch(ctx) or len(ctx.output.shape) < 2:
            return
        if ctx.labels.dtype == "str" or looks_like_class_ids(ctx) or colour_channels(ctx) or one_based_one_hot(ctx):
            return  # SC107 / SC117 / SC118 / SC119: the labels or the loss are wrong, not the head
        if ctx.loss.target == "one_hot" and index_labels_match(ctx):
            return  # SC109: class ids for a one-hot loss
        outputs, width = ctx.output.shape[class_axis(ctx)], label_width(ctx)
        if width is None or width == outputs or outputs == 1 or (ctx.loss.wants_class_indices and width == 1):
            return
        head = ctx.trace.head_layer()
        unit = "position" if len(ctx.output.shape) > 2 else "sample"   # a time step or pixel of a dense output
        per_sample = ("1 target" if width == 1 else f"{width} targets") + f" per {unit}"
        message = f"{output_phrase(ctx)}; labels have shape {fmt(ctx.labels.shape)} ({per_sample}, not {outputs})"
        if class_ids_for_binary_loss(ctx, outputs):   # a multi-class head is right; the loss is not
            stats = ctx.labels.stats
            yield self.finding(message + f": they hold class ids {int(stats.minimum)}..{int(stats.maximum)}", head,
                               [Fix(f"Train the {outputs}-class output with a class-index loss",
                                    ctx.recipes.class_index_loss(ctx.loss))])
            return
        fixes = []
        if head is not None:
            fixes.append(new_head(ctx, head, width, f"Replace the head with {width} output{'s' if width > 1 else ''}"))
        lab = ctx.labels.shape
        if len(lab) == len(ctx.output.shape) - 1 and not ctx.loss.lenient:
            cast = ".float()" if is_int(ctx.labels.dtype) else ""
            fixes.append(Fix("Then match the labels to the output", ctx.recipes.labels(f"{cast}.unsqueeze(1)"), joins=True))
        if ctx.loss.family == "regression" and width == 1:   # the labels may be the part that lost its columns
            axis = class_axis(ctx) % len(ctx.output.shape)
            wanted = (*lab[:axis], outputs, *lab[axis + (len(lab) == len(ctx.output.shape)):])
            fixes.append(Fix(f"Or, if the model should predict {outputs} values, give each {unit} {outputs} targets: "
                             f"labels of shape {fmt(wanted)}"))
        elif ctx.loss.family == "binary" and outputs == 2 and width == 1:
            fixes.append(Fix("Or keep two outputs and train with class indices", ctx.recipes.loss("CrossEntropyLoss")))
        yield self.finding(message, head, fixes)


