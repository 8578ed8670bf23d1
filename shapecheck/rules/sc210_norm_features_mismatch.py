from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import failed_layer, from_phrase, ref
from shapecheck.shapes import fmt


class NormFeaturesMismatch(Rule):
    code = "SC210"
    name = "norm-features-mismatch"
    category = "internal_layer"
    summary = "A normalisation layer's feature count differs from the channels that reach it"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        layer = failed_layer(ctx, "norm", needs_weight=False)
        if layer is None:
            return
        x = layer.inputs[0].shape
        expected = layer.config.get("num_features")
        if expected is None or len(x) < 2 or x[1] == expected:
            return
        message = (f"{ref(ctx, layer.name)} ({layer.type}) normalises {expected} channels on axis 1 but receives "
                   f"{fmt(x)}{from_phrase(ctx, layer)}")
        if x[-1] == expected and len(x) == 3:
            fixes = [Fix("The features are on the last axis: move them to axis 1 before the norm (and back after)",
                          ctx.recipes.swap_axes(1, 2))]
        else:
            fixes = [Fix(f"Size it for {x[1]} channels", ctx.recipes.replace_norm(layer, x[1]))]
        yield self.finding(message, layer, fixes)
