from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape
from shapecheck.rules.predicates import colour_channels
from shapecheck.shapes import fmt


class ColourMaskLabels(Rule):
    code = "SC118"
    name = "colour-mask-labels"
    category = "label_range"
    summary = "Segmentation labels are an RGB colour image, not a map of class indices"
    explains = frozenset({"loss:shape"})

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
        yield self.finding(message, ctx.trace.head_layer(), fixes)
