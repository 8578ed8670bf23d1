from shapecheck.rules import Rule
from shapecheck.rules.common import class_id_stats, new_head, values_text

# A head this much wider than the classes the labels use was kept from pre-training (ImageNet's 1000, VOC's 21).
MIN_UNUSED_RATIO = 4
MIN_HEAD = 16
# ...and the labels are evidence only when every sample landing below `used` by chance would be rare: two labels
# {39, 44} from a 200-class dataset happen one time in twenty. Samples, not pixels: a mask's pixels come together.
MAX_CHANCE = 0.01


class UnusedOutputClasses(Rule):
    code = "SC108"
    name = "unused-output-classes"
    category = "output_vs_loss"
    summary = "The head has far more classes than the labels use (a pre-trained 1000-way head kept)"

    def check(self, ctx):
        found = class_id_stats(ctx)
        if found is None:
            return
        stats, classes = found
        if stats.minimum < 0 or stats.maximum >= classes:
            return
        used = int(stats.maximum) + 1
        # one distinct class says more about a sorted dataset slice than about the problem
        if stats.distinct_count < 2 or classes < MIN_HEAD or classes < MIN_UNUSED_RATIO * used:
            return
        if (used / classes) ** ctx.labels.shape[0] > MAX_CHANCE:
            return   # too few labels to tell a small label set from a small sample of a large one
        head = ctx.head
        message = (f"`{ctx.loss.name}` input has {classes} classes but the labels use {values_text(stats)} "
                   f"(at most {used} classes): {classes - used} outputs are trained only to be pushed down")
        fixes = [new_head(ctx, head, used, f"Replace the head with one output per class: at least {used} (ids up to "
                          f"{used - 1} occur in these labels); use your dataset's class count", certain=False)] \
            if head else []
        yield self.finding(message, head, fixes)
