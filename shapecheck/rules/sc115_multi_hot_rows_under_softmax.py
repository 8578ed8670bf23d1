from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import per_class_rows
from shapecheck.shapes import is_int


class MultiHotRowsUnderSoftmax(Rule):
    code = "SC115"
    name = "multi-hot-rows-under-softmax"
    category = "label_range"
    summary = "Rows with several 1s (multi-label targets) are given to a softmax cross-entropy"

    def check(self, ctx):
        stats = per_class_rows(ctx)
        if stats is None or stats.multi_hot_rows == 0 or is_int(ctx.labels.dtype):
            return  # integer rows are already reported as the wrong target format (SC103)
        message = (f"{stats.multi_hot_rows} of {stats.rows} label rows mark several classes; `{ctx.loss.name}` reads them "
                   "as probabilities that sum past 1, a multi-label problem trained as single-label")
        fixes = [Fix("Train multi-label with a sigmoid per class", ctx.recipes.loss("BCEWithLogitsLoss"))]
        yield self.finding(message, ctx.trace.head_layer(), fixes)
