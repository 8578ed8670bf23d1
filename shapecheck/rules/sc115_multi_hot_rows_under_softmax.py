from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_axis, final_activation, per_class_rows
from shapecheck.shapes import is_int


class MultiHotRowsUnderSoftmax(Rule):
    code = "SC115"
    name = "multi-hot-rows-under-softmax"
    category = "label_range"
    summary = "Rows with several 1s (multi-label targets) are given to a softmax cross-entropy"
    subject = "loss"
    aspect = "values"

    def check(self, ctx):
        stats = per_class_rows(ctx)
        if stats is None or stats.multi_hot_rows == 0 or is_int(ctx.labels.dtype):
            return  # only floating-point rows are read as probabilities; integer rows are rejected
        message = (f"{stats.multi_hot_rows} of {stats.rows} label rows mark several classes; `{ctx.loss.name}` reads them "
                   "as probabilities that sum past 1, a multi-label problem trained as single-label")
        head = ctx.head
        yield self.finding(message, head, _multi_label_fixes(ctx))


def _multi_label_fixes(ctx) -> list[Fix]:
    """A sigmoid per class and a binary cross-entropy; a softmax in the model has to go, or it still picks one."""
    op = final_activation(ctx)
    if op is None or op.name != "softmax":
        return [Fix("Train multi-label with a sigmoid per class", ctx.recipes.loss("BCEWithLogitsLoss"))]
    softmax_layer = ctx.trace.layer(op.layer)
    if ctx.trace.framework == "keras" and softmax_layer is not None:
        classes = ctx.output.shape[class_axis(ctx)]
        sigmoid = (f'layers.Activation("sigmoid", name="{softmax_layer.name}")' if softmax_layer.kind == "activation"
                   else ctx.recipes.replace_head(softmax_layer, classes, "sigmoid"))
        return [Fix("Give every class its own sigmoid instead of the softmax", sigmoid),
                Fix("and train with binary cross-entropy on the 0/1 rows", ctx.recipes.binary_loss(from_logits=False), joins=True)]
    return [Fix("Remove the softmax from the model and train multi-label with a sigmoid per class",
                ctx.recipes.loss("BCEWithLogitsLoss"))]
