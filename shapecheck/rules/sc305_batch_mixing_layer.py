from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref


class BatchMixingLayer(Rule):
    code = "SC305"
    name = "batch-mixing-layer"
    category = "batch_dim"
    summary = "In eval mode, one sample's output depends on other samples in the batch"
    subject = "batch"   # the catch-all for the probe: rules that name the cause (a time-major RNN, a reduction,
    # a reshape) supersede it

    def check(self, ctx):
        probe = ctx.trace.probe
        if probe is None:
            return
        layer = ctx.trace.layer(probe.layer)
        keras = ctx.trace.framework == "keras"
        own = f"`{ctx.trace.model_class}.{'call' if keras else 'forward'}`"
        where = f"{ref(ctx, layer.name)} ({layer.type})" if layer is not None else own
        mode = "inference mode (`training=False`)" if keras else "eval mode"
        message = (f"changing sample 0 of the batch changed the output of sample 1 in {mode}: {where} mixes "
                   "samples across the batch axis")
        yield self.finding(message, layer, [Fix("Find the reduction, reshape, normalisation or attention that runs "
                                                "over axis 0 there: each sample must be computed on its own")])
