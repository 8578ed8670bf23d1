from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import values_text
from shapecheck.rules.predicates import looks_like_class_ids
from shapecheck.shapes import fmt


class ClassIdsForRegression(Rule):
    code = "SC117"
    name = "class-ids-for-regression"
    category = "label_range"
    summary = "Integer class ids are given to a regression loss next to a multi-class output"
    explains = frozenset({"loss:dtype", "loss:shape"})

    def check(self, ctx):
        if not looks_like_class_ids(ctx):
            return
        labels, loss, out = ctx.labels, ctx.loss, ctx.output
        classes = out.shape[1]
        shown = f" with values {values_text(labels.stats)}" if labels.stats else ""
        message = (f"`{loss.name}` gets integer labels {fmt(labels.shape)}{shown} for an output {fmt(out.shape)}: "
                   f"class ids for {classes} classes, not regression targets")
        yield self.finding(message, ctx.trace.head_layer(),
                           [Fix("Train the classifier with a class-index loss", ctx.recipes.loss("CrossEntropyLoss"))])
