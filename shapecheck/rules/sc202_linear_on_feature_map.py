import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import from_phrase, ref
from shapecheck.shapes import fmt


class LinearOnFeatureMap(Rule):
    code = "SC202"
    name = "linear-on-feature-map"
    category = "internal_layer"
    summary = "A Linear layer gets a 4-D conv feature map without flatten or pooling; it acts on the last axis only"
    subject = "loss"
    aspect = "shape"
    explains_failure = True
    supersedes = frozenset({"SC100", "SC201", "SC212", "SC901"})

    def check(self, ctx):
        for layer in ctx.trace.layers:
            if layer.kind != "linear" or not layer.inputs or len(layer.inputs[0].shape) < 4:
                continue
            if not _fed_by_feature_map(ctx, layer):
                continue  # [N, H, W, C] after a permute (ConvNeXt, Swin): a per-position Linear is intended
            if ctx.trace.framework == "keras" and _reduced_later(ctx, layer):
                continue  # a channels-last Dense per position, then flattened or pooled: a 1x1 convolution
            x = layer.inputs[0].shape
            result = f"; the output is {fmt(layer.output.shape)}" if layer.output else ""
            message = (f"{ref(ctx, layer.name)} ({layer.type}) receives a {len(x)}-D feature map {fmt(x)}"
                       f"{from_phrase(ctx, layer)}: it transforms only the last axis ({x[-1]}), position by position"
                       f"{result}")
            producer = ctx.trace.upstream_layer(layer.input_producers[0] if layer.input_producers else None)
            channels = x[producer.channel_axis] if producer is not None else x[1]
            resized = ctx.recipes.linear(channels, layer.config.get("out_features", "?"))
            fixes = [Fix(f"Pool the map to one vector per sample first, then use `{resized}`",
                         ctx.recipes.pool_before(layer)),
                     Fix("Or flatten it", ctx.recipes.flatten_before(layer, math.prod(x[1:])))]
            yield self.finding(message, layer, fixes)


_MAP_OPS = ("conv", "max_pool", "avg_pool", "adaptive_avg_pool", "adaptive_max_pool", "batch_norm")
_AXIS_MOVES = ("permute", "transpose", "movedim", "swapaxes", "layer_norm")


def _fed_by_feature_map(ctx, layer) -> bool:
    """The input comes straight from a conv/pool stack, with no axis move (a permute to channels-last) on the way."""
    producers = layer.input_producers
    for op in ctx.trace.producer_chain(producers[0] if producers else None):
        if op.name.startswith(_AXIS_MOVES):
            return False
        if op.name.startswith(_MAP_OPS):
            return True
    return False


def _reduced_later(ctx, layer) -> bool:
    """The model output has fewer axes than the layer's: its map is flattened or pooled after it."""
    out = ctx.trace.output
    return out is not None and layer.output is not None and len(out.shape) < len(layer.output.shape)
