from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_axis, loss_ready
from shapecheck.shapes import fmt


class OneBasedOneHot(Rule):
    code = "SC119"
    name = "one-based-one-hot"
    category = "label_range"
    summary = "One-hot labels of 1-based class ids: one column too many, and column 0 is never used"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC101", "SC404"})

    def check(self, ctx):
        if not one_based_one_hot(ctx):
            return
        width = ctx.labels.shape[class_axis(ctx)]
        message = (f"one-hot labels {fmt(ctx.labels.shape)} have {width} columns for {width - 1} outputs, and column 0 "
                   f"is never set: class ids 1..{width - 1} were encoded as if they started at 0")
        fixes = [Fix("Shift the ids to start at 0 before encoding", ctx.recipes.one_hot("ids - 1", width - 1)),
                 Fix("Or drop the empty first column", ctx.recipes.drop_first_class(class_axis(ctx)))]
        yield self.finding(message, ctx.head, fixes)


def one_based_one_hot(ctx) -> bool:
    """One-hot labels one column wider than the head, whose first column is never set: ids 1..C encoded."""
    if not loss_ready(ctx) or ctx.loss.family != "categorical" or len(ctx.labels.shape) != len(ctx.output.shape):
        return False
    axis = class_axis(ctx)
    if ctx.labels.shape[axis] != ctx.output.shape[axis] + 1:
        return False
    stats = ctx.labels.stats
    rows = stats.rows(ctx.loss.class_axis) if stats else None
    return rows is not None and rows.first_column_empty and rows.zero_rows == 0
