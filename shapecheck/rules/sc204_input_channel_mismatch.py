from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import fed_by_model_input, ref
from shapecheck.rules.predicates import channel_mismatch
from shapecheck.shapes import fmt


class InputChannelMismatch(Rule):
    code = "SC204"
    name = "input-channel-mismatch"
    category = "input_shape"
    summary = "The input's channel count differs from the first convolution's (grayscale into an RGB stem)"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC215", "SC901"})

    def check(self, ctx):
        found = channel_mismatch(ctx)
        if found is None or not fed_by_model_input(ctx, found[0]):
            return
        layer, expected, actual = found
        x = layer.inputs[0].shape
        if ctx.trace.framework == "torch" and layer.weight is not None and len(x) == len(layer.weight.shape) - 1:
            yield self._unbatched(ctx, layer, expected, x)
            return
        message = f"{ref(ctx, layer.name)} ({layer.type}) expects {expected}-channel input but the input {fmt(x)} has {actual}"
        if layer.channel_axis == 1 and x[-1] == expected and len(x) >= 3:
            fixes = [Fix("The input is channels-last: move channels to axis 1", ctx.recipes.channels_first(len(x)))]
        elif layer.channel_axis == -1 and x[1] == expected and len(x) >= 3:
            fixes = [Fix("The input is channels-first: move channels last", ctx.recipes.channels_last(len(x)))]
        elif actual == 1:
            fixes = [Fix(f"Repeat the grayscale channel {expected} times", ctx.recipes.repeat_channels(expected)),
                     Fix(f"Or rebuild {ref(ctx, layer.name)} for {actual}-channel input",
                         ctx.recipes.replace_conv_input(layer, actual))]
        else:
            fixes = [Fix(f"Rebuild {ref(ctx, layer.name)} for {actual}-channel input", ctx.recipes.replace_conv_input(layer, actual))]
        yield self.finding(message, layer, fixes)


    def _unbatched(self, ctx, layer, expected: int, x: tuple):
        """PyTorch reads a conv input one axis short as a single unbatched sample: the batch becomes channels."""
        rank = len(layer.weight.shape)
        axes = {3: "(N, C, L)", 4: "(N, C, H, W)", 5: "(N, C, D, H, W)"}.get(rank, f"{rank}-D")
        message = (f"{ref(ctx, layer.name)} ({layer.type}) takes {rank}-D input {axes}; the {len(x)}-D input {fmt(x)} is "
                   f"read as one unbatched sample with {x[0]} channels")
        if rank == 5 and expected > 1 and x[1] % expected == 0 and x[1] > expected:   # video frames stacked as channels
            steps = x[1] // expected
            sizes = ", ".join(map(str, x[2:]))
            fix = Fix(f"Unstack the {steps} frames of {expected} channels into their own axis",
                      f"x = x.view({x[0]}, {steps}, {expected}, {sizes}).transpose(1, 2)")
        else:
            fix = Fix("Add the channel axis" + (f", then repeat it {expected} times" if expected > 1 else ""),
                      "x = x.unsqueeze(1)" + (f".expand(-1, {expected}, {', '.join(['-1'] * (len(x) - 1))})"
                                              if expected > 1 else ""))
        return self.finding(message, layer, [fix])

