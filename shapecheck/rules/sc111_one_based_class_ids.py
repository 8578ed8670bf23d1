from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_id_stats, values_text


class OneBasedClassIds(Rule):
    code = "SC111"
    name = "one-based-class-ids"
    category = "label_range"
    summary = "Class ids run 1..C instead of 0..C-1: the last class is out of range, class 0 never used"
    subject = "loss"
    aspect = "values"
    supersedes = frozenset({"SC100", "SC110", "SC404"})

    def check(self, ctx):
        found = class_id_stats(ctx)
        if found is None:
            return
        stats, classes = found
        if not looks_one_based(stats, classes):
            return
        message = (f"`{ctx.loss.name}` labels take values {values_text(stats)}: ids 1..{classes} are 1-based, but the "
                   f"{classes} outputs are indexed 0..{classes - 1}")
        yield self.finding(message, ctx.head,
                           [Fix("Shift the labels to start at 0", ctx.recipes.labels_steps(("shift", -1)))])


def looks_one_based(stats, classes: int) -> bool:
    return stats.minimum >= 1 and stats.maximum == classes
