from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_id_stats, ignore_marker, values_text


class MaskValuesAsClassIds(Rule):
    code = "SC112"
    name = "mask-values-as-class-ids"
    category = "label_range"
    summary = "Mask pixel values (gray levels such as 0/255) are used as class ids"
    subject = "loss"
    aspect = "values"
    supersedes = frozenset({"SC100", "SC110", "SC404"})

    def check(self, ctx):
        found = class_id_stats(ctx)
        if found is None:
            return
        stats, classes = found
        if len(ctx.labels.shape) < 2 or not looks_like_mask_levels(stats, classes):   # a mask has pixels
            return
        levels = [int(v) for v in stats.distinct]
        lookup = ", ".join(f"{level}: {index}" for index, level in enumerate(levels))
        message = (f"`{ctx.loss.name}` labels take values {values_text(stats)}: gray levels of a mask image, not class "
                   f"ids 0..{classes - 1} for {classes} outputs")
        fixes = [Fix("Map gray levels to class indices", ctx.recipes.positive_mask("int64") if len(levels) == 2
                     else f"lookup = {{{lookup}}}  # gray level -> class id")]
        yield self.finding(message, ctx.head, fixes)


def looks_like_mask_levels(stats, classes: int) -> bool:
    """Few distinct values, some far beyond the class count: gray levels (0/128/255) read straight from an image.
    Valid ids plus one out-of-range value are an 'ignore' marker (255 in VOC), not gray levels; ids that fill most
    of their range (0..10) are class ids beyond the head, not levels spread over 0..255."""
    if not stats.distinct or ignore_marker(stats, classes) is not None:
        return False
    if len(stats.distinct) > (stats.maximum - stats.minimum + 1) / 2:
        return False
    return len(stats.distinct) <= max(classes, 2) * 2 and stats.maximum >= 2 * classes \
        and stats.maximum <= 255 and stats.minimum >= 0
