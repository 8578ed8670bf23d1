from shapecheck.findings import Fix
from shapecheck.rules import Rule


class BatchMixingLayer(Rule):
    code = "SC305"
    name = "batch-mixing-layer"
    category = "batch_dim"
    summary = "In eval mode, one sample's output depends on other samples in the batch"

    def check(self, ctx):
        probe = ctx.trace.probe
        if probe is None:
            return
        layer = ctx.trace.layer(probe.layer)
        if layer is not None and layer.kind == "rnn" and not layer.config.get("batch_first", False):
            return  # SC304 explains the recurrent case
        where = f"`{layer.name}` ({layer.type})" if layer is not None else f"`{ctx.trace.model_class}.forward`"
        message = (f"changing sample 0 of the batch changed the output of sample 1 in eval mode: {where} mixes "
                   "samples across the batch axis")
        yield self.finding(message, layer, [Fix("Check which axis is the batch in this layer's input; reductions, "
                                                "reshapes and recurrent layers must keep samples apart")])
