from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ids_under_binary_loss, values_text


class BinaryTargetsOutOfRange(Rule):
    code = "SC113"
    name = "binary-targets-out-of-range"
    category = "label_range"
    summary = "A binary cross-entropy gets targets outside [0, 1] (0/255 masks, class ids)"
    subject = "loss"
    aspect = "values"
    supersedes = frozenset({"SC404"})

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if loss is None or loss.family != "binary" or labels is None or labels.stats is None:
            return
        stats = labels.stats
        if stats.minimum >= 0 and stats.maximum <= 1:
            return
        message = f"`{loss.name}` targets take values {values_text(stats)}; binary cross-entropy needs targets in [0, 1]"
        if stats.maximum == 255 and stats.minimum >= 0:
            fixes = [Fix("Scale the 0/255 mask to 0/1", ctx.recipes.labels_steps(("divide", 255.0)))]
        elif stats.integral and stats.distinct_count > 2 and ctx.trace.task == "multi_label" and ctx.output is not None:
            fixes = [ids_under_binary_loss(ctx, ctx.output.shape[-1 if loss.lenient else 1])]
        elif stats.integral and stats.distinct_count > 2:
            fixes = [Fix("These look like class ids: use a class-index loss", ctx.recipes.loss("CrossEntropyLoss"))]
            head, classes = ctx.head, int(stats.maximum) + 1
            if head is not None and ctx.output is not None and ctx.output.shape[-1 if loss.lenient else 1] < classes:
                softmax = "softmax" if loss.framework == "keras" else None   # Keras' class-index loss takes probabilities
                fixes.append(Fix(f"with one output per class (at least {classes}: ids up to {classes - 1} occur)",
                                 ctx.recipes.replace_head(head, classes, softmax), joins=True, certain=False))
        else:
            fixes = [Fix("Binarise the targets", ctx.recipes.positive_mask("float32"))]
        yield self.finding(message, ctx.head, fixes)
