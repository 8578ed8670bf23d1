from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_axis
from shapecheck.rules.predicates import one_based_one_hot
from shapecheck.shapes import fmt


class OneBasedOneHot(Rule):
    code = "SC119"
    name = "one-based-one-hot"
    category = "label_range"
    summary = "One-hot labels of 1-based class ids: one column too many, and column 0 is never used"
    explains = frozenset({"loss:shape"})

    def check(self, ctx):
        if not one_based_one_hot(ctx):
            return
        width = ctx.labels.shape[class_axis(ctx)]
        message = (f"one-hot labels {fmt(ctx.labels.shape)} have {width} columns for {width - 1} outputs, and column 0 "
                   f"is never set: class ids 1..{width - 1} were encoded as if they started at 0")
        fixes = [Fix("Shift the ids to start at 0 before encoding", ctx.recipes.one_hot("ids - 1", width - 1)),
                 Fix("Or drop the empty first column", ctx.recipes.drop_first_class(class_axis(ctx)))]
        yield self.finding(message, ctx.trace.head_layer(), fixes)
