from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.shapes import fmt


def reads_time_major(layer) -> bool:
    """Recurrent, attention and transformer layers default to (time, batch, features) unless batch_first=True."""
    return (layer.kind == "rnn" or "batch_first" in layer.config) and not layer.config.get("batch_first", False)


class RecurrentBatchAxis(Rule):
    code = "SC304"
    name = "recurrent-batch-axis"
    category = "input_shape"
    summary = "A recurrent or attention layer reads the batch axis as time (batch-first input without batch_first=True)"

    def check(self, ctx):
        probe = ctx.trace.probe
        layer = ctx.trace.layer(probe.layer) if probe else None
        if layer is None or not reads_time_major(layer):
            return
        x = layer.inputs[0].shape if layer.inputs else ()
        reading = f" so it reads {fmt(x)} as (time={x[0]}, batch={x[1]}, features={x[2]})" if len(x) == 3 else ""
        message = (f"{ref(ctx, layer.name)} ({layer.type}) mixes samples: changing sample 0 changed the output of sample 1. "
                   f"It was built without batch_first=True,{reading}")
        fixes = [Fix("Build it batch-first", ctx.recipes.recurrent_batch_first(layer)),
                 Fix("Or feed it time-major input and index the last step as `out[-1]`")]
        yield self.finding(message, layer, fixes)
