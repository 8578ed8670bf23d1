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

    def check(self, ctx):
        for layer in ctx.trace.layers:
            if layer.kind != "linear" or not layer.inputs or len(layer.inputs[0].shape) < 4:
                continue
            x = layer.inputs[0].shape
            weight = layer.params.get("weight")
            outputs = weight.shape[0] if weight else "?"
            result = f"; the output is {fmt(layer.output.shape)}" if layer.output else ""
            message = (f"{ref(ctx, layer.name)} ({layer.type}) receives a {len(x)}-D feature map {fmt(x)}"
                       f"{from_phrase(ctx, layer)}: it mixes only the last axis ({x[-1]}){result}")
            features = math.prod(x[1:])
            fixes = [Fix("Flatten the map first", ctx.recipes.flatten_before(layer, features)),
                     Fix(f"Or pool it to {x[1]} features first (`nn.AdaptiveAvgPool2d(1)`, flatten, then "
                         f"`{ctx.recipes.linear(x[1], outputs)}`)")]
            yield self.finding(message, layer, fixes)
