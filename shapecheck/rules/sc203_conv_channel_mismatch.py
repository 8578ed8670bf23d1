from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import fed_by_model_input, from_phrase, ref
from shapecheck.rules.predicates import channel_mismatch
from shapecheck.shapes import fmt


class ConvChannelMismatch(Rule):
    code = "SC203"
    name = "conv-channel-mismatch"
    category = "internal_layer"
    summary = "A convolution's in_channels differ from the channels of the map that reaches it"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        found = channel_mismatch(ctx)
        if found is None or fed_by_model_input(ctx, found[0]):
            return
        layer, expected, actual = found
        message = (f"{ref(ctx, layer.name)} ({layer.type}) expects {expected} input channels but receives "
                   f"{fmt(layer.inputs[0].shape)}{from_phrase(ctx, layer)}")
        yield self.finding(message, layer, [Fix(f"Give {ref(ctx, layer.name)} {actual} input channels",
                                                ctx.recipes.replace_conv_input(layer, actual))])
