from shapecheck.findings import Fix
from shapecheck.rules import Rule


class MultiHotRowsUnderSoftmax(Rule):
    code = "SC115"
    name = "multi-hot-rows-under-softmax"
    category = "label_range"
    summary = "Rows with several 1s (multi-label targets) are given to a softmax cross-entropy"

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if loss is None or loss.family != "categorical" or labels is None or labels.stats is None:
            return
        if ctx.output is not None and labels.shape != ctx.output.shape:
            return
        stats = labels.stats
        if not stats.binary_rows or stats.multi_hot_rows == 0 or labels.dtype in ("int64", "int32", "uint8"):
            return  # integer rows are already reported as the wrong target format (SC103)
        message = (f"{stats.multi_hot_rows} of {stats.rows} label rows mark several classes; `{loss.name}` reads them "
                   "as probabilities that sum past 1, a multi-label problem trained as single-label")
        fixes = [Fix("Train multi-label with a sigmoid per class", ctx.recipes.loss("BCEWithLogitsLoss"))]
        yield self.finding(message, ctx.trace.head_layer(), fixes)
