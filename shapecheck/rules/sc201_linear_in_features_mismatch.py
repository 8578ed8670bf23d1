import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import failed_layer, from_phrase, ref
from shapecheck.shapes import fmt


class LinearInFeaturesMismatch(Rule):
    code = "SC201"
    name = "linear-in-features-mismatch"
    category = "internal_layer"
    summary = "A Linear layer's in_features differ from the features that reach it"
    explains_failure = True

    def check(self, ctx):
        layer = failed_layer(ctx, "linear")
        if layer is None:
            return
        x, weight = layer.inputs[0], layer.weight
        expected, actual, outputs = layer.config.get("in_features"), x.shape[-1], layer.config.get("out_features")
        if expected is None:
            return
        if actual == expected or len(x.shape) >= 4 or x.dtype != weight.dtype:
            return  # 4-D input: SC202; dtype: SC206
        message = (f"{ref(ctx, layer.name)} ({layer.type}) expects {expected} input features but receives {fmt(x.shape)}"
                   f"{from_phrase(ctx, layer)}")
        fixes = [Fix(f"Change `{ctx.recipes.linear(expected, outputs)}` to `{ctx.recipes.linear(actual, outputs)}`")]
        feature_map = _flattened_map(ctx, layer)
        if feature_map is not None:
            note, fix = _resolution_hint(ctx, feature_map, expected)
            message += note
            fixes.extend(fix)
        yield self.finding(message, layer, fixes)


def _flattened_map(ctx, layer):
    """The 4-D map [N, C, H, W] that was flattened into this layer's input, if it was."""
    producers = layer.input_producers
    for op in ctx.trace.producer_chain(producers[0] if producers else None):
        if op.name in ("flatten", "view", "reshape") and op.inputs and len(op.inputs[0].shape) == 4:
            return op.inputs[0].shape
        if op.name not in ("flatten", "view", "reshape", "dropout", "contiguous"):
            return None
    return None


def _resolution_hint(ctx, feature_map, expected):
    """A layer sized for C x s x s maps fed C x H x W maps: the input resolution changed since it was written."""
    channels, height, width = feature_map[1:]
    side = math.isqrt(expected // channels) if expected % channels == 0 else 0
    image = ctx.trace.inputs[0].shape
    if side == 0 or side * side * channels != expected or len(image) != 4 or height == side:
        return "", []
    designed = image[2] * side // height
    note = (f"; it was sized for {channels}x{side}x{side} maps (a {designed}x{designed} input), the "
            f"{image[2]}x{image[3]} input gives {channels}x{height}x{width}")
    fixes = [Fix(f"Feed {designed}x{designed} inputs, or pool to a fixed size before the flatten",
                 ctx.recipes.adaptive_pool(side, side))]
    return note, fixes
