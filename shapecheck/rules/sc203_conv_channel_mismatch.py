from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import failed_layer, fed_by_model_input, from_phrase, ref
from shapecheck.shapes import fmt


def channel_mismatch(ctx):
    """(layer, expected channels, received channels) for a conv that stopped on its channel count."""
    layer = failed_layer(ctx, "conv")
    if layer is None:
        return None
    x = layer.inputs[0]
    expected = layer.config.get("in_channels")
    if len(x.shape) < 3 or x.dtype != layer.weight.dtype or expected is None:
        return None
    received = x.shape[layer.channel_axis]
    return None if received == expected else (layer, expected, received)


class ConvChannelMismatch(Rule):
    code = "SC203"
    name = "conv-channel-mismatch"
    category = "internal_layer"
    summary = "A convolution's in_channels differ from the channels of the map that reaches it"
    explains = frozenset({"forward"})

    def check(self, ctx):
        found = channel_mismatch(ctx)
        if found is None or fed_by_model_input(ctx, found[0]):
            return
        layer, expected, actual = found
        message = (f"{ref(ctx, layer.name)} ({layer.type}) expects {expected} input channels but receives "
                   f"{fmt(layer.inputs[0].shape)}{from_phrase(ctx, layer)}")
        yield self.finding(message, layer, [Fix(f"Give {ref(ctx, layer.name)} {actual} input channels",
                                                ctx.recipes.replace_conv_input(layer, actual))])
