from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape, loss_ready
from shapecheck.shapes import fmt


class ColourMaskLabels(Rule):
    code = "SC118"
    name = "colour-mask-labels"
    category = "label_range"
    summary = "Segmentation labels are an RGB colour image, not a map of class indices"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC101", "SC404"})

    def check(self, ctx):
        channels = colour_channels(ctx)
        if channels is None:
            return
        lab = ctx.labels.shape
        message = (f"`{ctx.loss.name}` labels {fmt(lab)} carry {channels} colour channels per pixel; it expects one "
                   f"class index per pixel {fmt(index_target_shape(ctx))}: the mask was loaded as a colour image")
        fixes = [Fix("Map each palette colour to its class index", "labels = palette_to_index(mask)  # e.g. a "
                     "{(r, g, b): class_id} lookup"),
                 Fix("Or load a palette-indexed PNG as indices (PIL: `np.array(Image.open(path))` without .convert)")]
        yield self.finding(message, ctx.head, fixes)


def colour_channels(ctx) -> int | None:
    """3 or 4 when the labels are the class-index map plus a trailing RGB(A) axis, and that is not the class count."""
    if not loss_ready(ctx) or not ctx.loss.wants_class_indices or len(ctx.output.shape) < 4:
        return None
    lab, expected = ctx.labels.shape, index_target_shape(ctx)
    channels = None
    if len(lab) == len(expected) + 1 and lab[:-1] == expected:
        channels = lab[-1]                                      # [N, H, W, 3]
    elif len(lab) == len(expected) + 1 and lab[:1] + lab[2:] == expected:
        channels = lab[1]                                       # [N, 3, H, W]
    stats = ctx.labels.stats
    one_hot = stats is not None and bool(stats.rows_by_axis)
    classes = ctx.output.shape[ctx.loss.class_axis]
    colour_values = stats is not None and stats.maximum >= classes   # 128, 255: colours, whatever the class count
    if channels not in (3, 4) or one_hot:
        return None
    return channels if channels != classes or colour_values else None
