from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import per_class_rows
from shapecheck.shapes import is_float


class EmptyOneHotRows(Rule):
    code = "SC114"
    name = "empty-one-hot-rows"
    category = "label_range"
    summary = "Per-class targets for a softmax loss have all-zero rows: those samples add nothing to the loss"
    subject = "loss"
    aspect = "values"

    def check(self, ctx):
        stats = per_class_rows(ctx)
        if stats is None or stats.zero_rows == 0:
            return
        if ctx.loss.wants_class_indices and not (is_float(ctx.labels.dtype) and ctx.loss.accepts_probabilities):
            return  # a loss that does not read rows as class probabilities rejects them instead of giving 0
        message = (f"{stats.zero_rows} of {stats.rows} one-hot label rows are all zero: `{ctx.loss.name}` gives those "
                   "samples zero loss and zero gradient")
        fixes = [Fix("Give every sample its class (add a background/other class if some have none)"),
                 Fix("Or, if samples may have no class, train multi-label", ctx.recipes.loss("BCEWithLogitsLoss"))]
        yield self.finding(message, ctx.head, fixes)
