from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_axis, index_labels_match, index_target_shape, loss_ready, same_batch
from shapecheck.shapes import fmt, is_float


class ClassTargetFormat(Rule):
    code = "SC103"
    name = "class-target-format"
    category = "labels_vs_loss"
    summary = "A class-index loss gets labels that are not class indices of the output's shape"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        if not loss_ready(ctx) or not ctx.loss.wants_class_indices or not same_batch(ctx):
            return
        out, lab = ctx.output.shape, ctx.labels.shape
        expected = index_target_shape(ctx)
        if index_labels_match(ctx) or len(out) < 2:
            return
        classes = out[ctx.loss.class_axis]
        head = f"; expected class indices {fmt(expected)} for logits {fmt(out)}"
        message = f"`{ctx.loss.name}` labels have shape {fmt(lab)}{head}"
        axis = class_axis(ctx)
        if len(lab) == len(out) and lab[axis] == 1 and lab[:axis] + lab[axis + 1:] == expected:
            yield self.finding(message + " (a class axis of 1 reads as multi-target)", None,
                               [Fix("Drop the extra axis", ctx.recipes.squeeze(axis))])
        elif len(lab) == len(out) and lab == out:
            yield from self._per_class_labels(ctx, message, classes)
        elif len(out) >= 3 and lab == expected + (classes,):
            yield self.finding(f"{message} (one-hot masks, not class indices)", None,
                               [Fix("Convert the one-hot masks to class indices", ctx.recipes.argmax(-1)),
                                Fix("Or keep one-hot labels and use the one-hot form of the loss",
                                    ctx.recipes.one_hot_loss(ctx.loss))])

    def _per_class_labels(self, ctx, message, classes):
        """[N, C] labels: one-hot ints must become indices; NLLLoss takes no probabilities at all."""
        stats = ctx.labels.stats
        soft = is_float(ctx.labels.dtype) and ctx.loss.accepts_probabilities
        if soft:
            return  # per-class probabilities are a valid target; value rules judge the rows
        rows = stats.rows(ctx.loss.class_axis) if stats else None
        kind = "multi-hot rows" if rows is not None and rows.multi_hot_rows else "one-hot rows"
        fixes = [Fix("Convert one-hot rows to class indices", ctx.recipes.argmax(1))]
        if kind == "multi-hot rows":
            fixes = [Fix("Several classes per sample is multi-label: use a sigmoid loss",
                         ctx.recipes.loss("BCEWithLogitsLoss").commented(
                             ctx.recipes.labels_expression(("cast", "float32"))))]
        yield self.finding(f"{message} ({kind} of {ctx.labels.dtype}, {classes} classes)", None, fixes)
