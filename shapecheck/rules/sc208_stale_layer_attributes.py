from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.shapes import fmt

_ATTRIBUTES = {"linear": ("out_features", "in_features"), "conv": ("out_channels", "in_channels")}


class StaleLayerAttributes(Rule):
    code = "SC208"
    name = "stale-layer-attributes"
    category = "output_vs_loss"
    severity = "warning"
    summary = "A layer's size attributes were edited but its weight keeps the old size; an error on the output head"

    def check(self, ctx):
        head = ctx.trace.head_layer()
        for layer in ctx.trace.layers:
            weight = layer.params.get("weight")
            if layer.kind not in _ATTRIBUTES or weight is None or len(weight.shape) < 2 or "Transpose" in layer.type:
                continue
            out_attr, in_attr = _ATTRIBUTES[layer.kind]
            claimed = (layer.config.get(out_attr), layer.config.get(in_attr))
            actual = (weight.shape[0], weight.shape[1] * layer.config.get("groups", 1))
            if None in claimed or claimed == actual:
                continue
            message = (f"{ref(ctx, layer.name)} ({layer.type}) says {out_attr}={claimed[0]}, {in_attr}={claimed[1]}, but its "
                       f"weight is {fmt(weight.shape)}: editing the attribute does not resize the layer")
            if layer is head and ctx.output is not None:
                message += f"; the model outputs {fmt(ctx.output.shape)}"
            yield self.finding(message, layer, [Fix("Replace the layer instead of editing it",
                                                    ctx.recipes.replace_head(layer, claimed[0]))],
                               severity="error" if layer is head else None)
