from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import head_activation, ref
from shapecheck.shapes import fmt

_ATTRIBUTES = {"linear": ("out_features", "in_features"), "conv": ("out_channels", "in_channels")}


class StaleLayerAttributes(Rule):
    code = "SC208"
    name = "stale-layer-attributes"
    category = "output_vs_loss"
    severity = "warning"
    summary = "A layer's size attributes were edited but its weight keeps the old size; an error on the output head"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        head = ctx.head
        for layer in ctx.trace.layers:
            if layer.kind not in _ATTRIBUTES:
                continue
            out_key, in_key = _ATTRIBUTES[layer.kind]
            real = (layer.config.get(out_key), layer.config.get(in_key))
            claimed = (layer.declared.get(out_key), layer.declared.get(in_key))
            if None in real or None in claimed or claimed == real:
                continue
            message = (f"{ref(ctx, layer.name)} ({layer.type}) says {out_key}={claimed[0]}, {in_key}={claimed[1]}, but "
                       f"its weight has {out_key}={real[0]}, {in_key}={real[1]}: editing the attribute does not resize "
                       "the layer")
            if layer is head and ctx.output is not None:
                message += f"; the model outputs {fmt(ctx.output.shape)}"
            # the mistake is the line that set the attribute, which the trace does not see: the user replaces it
            replace = Fix("Replace the layer instead of editing it",
                          ctx.recipes.replace_head(layer, claimed[0], head_activation(ctx, claimed[0])),
                          applicability="display", reason=f"the line that set `{out_key}` is the one to replace, and "
                          "shapecheck does not know where it is")
            yield self.finding(message, layer, [replace], severity="error" if layer is head else None)
