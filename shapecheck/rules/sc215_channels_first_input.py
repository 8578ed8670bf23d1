from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import fed_by_model_input, ref
from shapecheck.shapes import fmt

IMAGE_CHANNELS = (1, 3, 4)


class ChannelsFirstInput(Rule):
    code = "SC215"
    name = "channels-first-input"
    category = "input_shape"
    summary = "Images laid out channels-first reach a channels-last model (or the reverse); it runs on the wrong axes"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        for layer in ctx.trace.layers:
            if layer.kind != "conv" or not layer.inputs or not fed_by_model_input(ctx, layer):
                continue
            x = layer.inputs[0].shape
            if len(x) != 4:
                return
            if layer.channel_axis == -1 and x[1] in IMAGE_CHANNELS and x[2] == x[3] and x[3] not in IMAGE_CHANNELS:
                layout, fix = "channels-first", ctx.recipes.channels_last(4)
            elif layer.channel_axis == 1 and x[3] in IMAGE_CHANNELS and x[1] == x[2] and x[1] not in IMAGE_CHANNELS:
                layout, fix = "channels-last", ctx.recipes.channels_first(4)
            else:
                return
            message = (f"the input {fmt(x)} looks {layout} ({x[1] if layout == 'channels-first' else x[3]} channels "
                       f"of {x[2]}x{x[2]} pixels), but {ref(ctx, layer.name)} ({layer.type}) reads channels on axis "
                       f"{layer.channel_axis}: it convolves over the wrong axes")
            yield self.finding(message, layer, [Fix(f"Convert the {layout} input", fix)])
            return
