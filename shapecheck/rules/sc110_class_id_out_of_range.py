from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_id_stats, new_head, values_text
from shapecheck.rules.sc111_one_based_class_ids import looks_one_based
from shapecheck.rules.sc112_mask_values_as_class_ids import looks_like_mask_levels

IGNORE_INDEX = -100


def ignore_marker(stats, classes: int) -> bool:
    """Every id is valid except one 255 (or 254/-1-style) value set aside for unlabelled pixels."""
    return stats.maximum == 255 and bool(stats.distinct) and all(v < classes for v in stats.distinct[:-1])


class ClassIdOutOfRange(Rule):
    code = "SC110"
    name = "class-id-out-of-range"
    category = "label_range"
    summary = "Class-index labels fall outside [0, C) for a head with C outputs"

    def check(self, ctx):
        found = class_id_stats(ctx)
        if found is None:
            return
        stats, classes = found
        negative = stats.minimum < 0 and stats.minimum != IGNORE_INDEX
        if stats.maximum < classes and not negative:
            return
        if looks_one_based(stats, classes) or looks_like_mask_levels(stats, classes):
            return  # a more specific rule explains these values
        needed = int(stats.maximum) + 1
        message = (f"`{ctx.loss.name}` labels take values {values_text(stats)}, but the output has {classes} classes "
                   f"(valid ids 0..{classes - 1})")
        head = ctx.trace.head_layer()
        if ignore_marker(stats, classes):   # Pascal VOC style: 255 marks pixels to skip
            message += f"; {int(stats.maximum)} looks like an 'ignore' marker, which the loss does not know about"
            yield self.finding(message, head, [Fix("Tell the loss to skip it",
                                                    ctx.recipes.loss("CrossEntropyLoss", f"ignore_index={int(stats.maximum)}"))],
                               severity="warning")   # the loss the user trains with may already say so
            return
        fixes = []
        if head is not None and not negative:
            fixes.append(new_head(ctx, head, needed, f"Give the head one output per class ({needed})"))
        remap = "re-map the labels to 0..C-1"
        fixes.append(Fix(f"Or {remap}" if fixes else remap[0].upper() + remap[1:], ctx.recipes.remap_labels()))
        yield self.finding(message, head, fixes)
