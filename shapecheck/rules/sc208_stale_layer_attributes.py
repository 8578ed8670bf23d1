from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt

_ATTRIBUTES = {"linear": ("out_features", "in_features"), "conv": ("out_channels", "in_channels")}


class StaleLayerAttributes(Rule):
    code = "SC208"
    name = "stale-layer-attributes"
    category = "internal_layer"
    severity = "warning"
    summary = "A layer's size attributes were edited, but its weight keeps the old size (the old size is what runs)"

    def check(self, ctx):
        for layer in ctx.trace.layers:
            weight = layer.params.get("weight")
            if layer.kind not in _ATTRIBUTES or weight is None or len(weight.shape) < 2 or "Transpose" in layer.type:
                continue
            out_attr, in_attr = _ATTRIBUTES[layer.kind]
            claimed = (layer.config.get(out_attr), layer.config.get(in_attr))
            actual = (weight.shape[0], weight.shape[1] * layer.config.get("groups", 1))
            if None in claimed or claimed == actual:
                continue
            message = (f"`{layer.name}` ({layer.type}) says {out_attr}={claimed[0]}, {in_attr}={claimed[1]}, but its "
                       f"weight is {fmt(weight.shape)}: editing the attribute does not resize the layer")
            yield self.finding(message, layer, [Fix("Replace the layer instead of editing it",
                                                    ctx.recipes.replace_head(layer, claimed[0]))])
