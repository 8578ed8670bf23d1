from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape, values_text


class ContinuousTargetsForClassification(Rule):
    code = "SC116"
    name = "continuous-targets-for-classification"
    category = "label_range"
    summary = "Fractional regression targets are given to a class-index loss"
    explains = frozenset({"loss:dtype", "loss:values"})

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if loss is None or not loss.wants_class_indices or labels is None or labels.stats is None:
            return
        if labels.stats.integral or (ctx.output is not None and labels.shape != index_target_shape(ctx)):
            return
        message = (f"`{loss.name}` labels take fractional values {values_text(labels.stats)}: regression targets, "
                   "not class indices")
        fixes = [Fix("For a regression problem use one linear output and a regression loss", ctx.recipes.loss("MSELoss"))]
        head = ctx.trace.head_layer()
        if head is not None:
            fixes.append(Fix("with a single output", ctx.recipes.replace_head(head, 1)))
        yield self.finding(message, head, fixes)
