from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import values_text
from shapecheck.shapes import fmt, is_int


class ClassIdsForRegression(Rule):
    code = "SC117"
    name = "class-ids-for-regression"
    category = "label_range"
    summary = "Integer class ids are given to a regression loss next to a multi-class output"
    subject = "loss"
    supersedes = frozenset({"SC100", "SC101", "SC102", "SC107"})

    def check(self, ctx):
        if not looks_like_class_ids(ctx):
            return
        labels, loss, out = ctx.labels, ctx.loss, ctx.output
        classes = out.shape[1]
        shown = f" with values {values_text(labels.stats)}" if labels.stats else ""
        message = (f"`{loss.name}` gets integer labels {fmt(labels.shape)}{shown} for an output {fmt(out.shape)}: "
                   f"class ids for {classes} classes, not regression targets")
        yield self.finding(message, ctx.head,
                           [Fix("Train the classifier with a class-index loss", ctx.recipes.loss("CrossEntropyLoss"))])


def looks_like_class_ids(ctx) -> bool:
    """Integer labels [N] with values below C, given to a regression loss next to an output [N, C]."""
    labels, loss, out = ctx.labels, ctx.loss, ctx.output
    if loss is None or loss.family != "regression" or labels is None or out is None or len(out.shape) != 2:
        return False
    classes = out.shape[1]
    if not is_int(labels.dtype) or labels.shape != out.shape[:1] or classes < 2:
        return False
    return labels.stats is None or (0 <= labels.stats.minimum and labels.stats.maximum < classes)
