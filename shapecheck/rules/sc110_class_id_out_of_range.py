from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import IGNORE_INDEX, class_id_stats, ignore_marker, new_head, values_text


class ClassIdOutOfRange(Rule):
    code = "SC110"
    name = "class-id-out-of-range"
    category = "label_range"
    summary = "Class-index labels fall outside [0, C) for a head with C outputs"
    subject = "loss"
    aspect = "values"
    supersedes = frozenset({"SC100", "SC404"})

    def check(self, ctx):
        found = class_id_stats(ctx)
        if found is None:
            return
        stats, classes = found
        negative = stats.minimum < 0 and stats.minimum != IGNORE_INDEX
        if stats.maximum < classes and not negative:
            return
        needed = int(stats.maximum) + 1
        message = (f"`{ctx.loss.name}` labels take values {values_text(stats)}, but the output has {classes} classes "
                   f"(valid ids 0..{classes - 1})")
        head = ctx.head
        marker = ignore_marker(stats, classes)
        if marker is not None:
            value = int(marker)
            message += f"; {value} looks like a marker for samples or pixels to skip, not a class"
            fixes = [Fix(f"Tell the loss to skip {value}", ctx.recipes.loss("CrossEntropyLoss", ignore_index=value))]
            if ctx.loss.framework == "torch":
                fixes.append(Fix(f"Or write those labels as {IGNORE_INDEX}, the value `CrossEntropyLoss` skips by default"))
            # 255 is VOC's void label; the loss it is trained with may already say ignore_index=255
            yield self.finding(message, head, fixes, severity="warning" if value == 255 else None)
            return
        fixes = []
        if head is not None and not negative:   # one batch shows the highest id in it, not the dataset's class count
            fixes.append(new_head(ctx, head, needed, f"Give the head one output per class: at least {needed} (ids up to "
                                  f"{needed - 1} occur in these labels); use your dataset's class count",
                                  certain=False))
        lowest = int(stats.minimum)
        if lowest != 0 and stats.maximum - stats.minimum < classes:   # a fixed offset (a -6..6 scale, ratings - 1)
            remap = f"shift the labels to start at 0 ({lowest} becomes 0)"
            recipe = ctx.recipes.labels_steps(("shift", -lowest))
        else:
            remap, recipe = "number the classes 0..C-1, once for the whole dataset", ctx.recipes.remap_labels()
        fixes.append(Fix(f"Or {remap}" if fixes else remap[0].upper() + remap[1:], recipe))
        yield self.finding(message, head, fixes)
