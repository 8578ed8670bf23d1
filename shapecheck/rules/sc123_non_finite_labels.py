from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt


class NonFiniteLabels(Rule):
    code = "SC123"
    name = "non-finite-labels"
    category = "label_range"
    summary = "Labels hold NaN or infinite values: the loss and then every weight become NaN"
    supersedes = frozenset({"SC404"})

    def check(self, ctx):
        labels = ctx.labels
        if labels is None or labels.stats is None or not labels.stats.non_finite:
            return
        stats = labels.stats
        message = (f"{stats.non_finite} of {stats.count} label values in {fmt(labels.shape)} are NaN or infinite: the "
                   "first batch that holds one makes the loss NaN, and the update spreads it to every weight")
        fixes = [Fix("Find the computation that made them; a z-score of a constant column divides by 0",
                     "labels = (labels - mean) / (std + 1e-8)"),
                 Fix("Or drop the rows whose labels are not finite", ctx.recipes.finite_rows())]
        yield self.finding(message, ctx.head, fixes)
