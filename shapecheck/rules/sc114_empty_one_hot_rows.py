from shapecheck.findings import Fix
from shapecheck.rules import Rule


class EmptyOneHotRows(Rule):
    code = "SC114"
    name = "empty-one-hot-rows"
    category = "label_range"
    summary = "Per-class targets for a softmax loss have all-zero rows: those samples add nothing to the loss"

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if loss is None or loss.family != "categorical" or labels is None or labels.stats is None:
            return
        if ctx.output is not None and labels.shape != ctx.output.shape:
            return
        stats = labels.stats
        if not stats.binary_rows or stats.zero_rows == 0:
            return
        message = (f"{stats.zero_rows} of {stats.rows} one-hot label rows are all zero: `{loss.name}` gives those "
                   "samples zero loss and zero gradient")
        fixes = [Fix("Give every sample its class (add a background/other class if some have none)"),
                 Fix("Or, if samples may have no class, train multi-label", ctx.recipes.loss("BCEWithLogitsLoss"))]
        yield self.finding(message, ctx.trace.head_layer(), fixes)
