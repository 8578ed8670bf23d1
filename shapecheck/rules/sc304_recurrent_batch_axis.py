from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.rules.predicates import reads_time_major
from shapecheck.shapes import fmt


class RecurrentBatchAxis(Rule):
    code = "SC304"
    name = "recurrent-batch-axis"
    category = "input_shape"
    summary = "A recurrent or attention layer reads the batch axis as time (batch-first input without batch_first=True)"
    subject = "batch"
    supersedes = frozenset({"SC305"})

    def check(self, ctx):
        probe = ctx.trace.probe
        probed = ctx.trace.layer(probe.layer) if probe else None
        if probed is not None and reads_time_major(probed):
            yield self._finding(ctx, probed, "mixes samples: changing sample 0 changed the output of sample 1")
            return
        for layer in ctx.trace.layers:   # no probe (an ONNX graph, a model too big to run): compare two batch sizes
            if reads_time_major(layer) and _batch_on_time_axis(ctx.trace, layer):
                batch = ctx.trace.batch
                yield self._finding(ctx, layer, f"reads the batch axis as time: axis 0 of its input follows the batch "
                                                f"({batch} at batch {batch}, {batch + 1} at batch {batch + 1})")
                return

    def _finding(self, ctx, layer, evidence: str):
        x: tuple[int, ...] = layer.inputs[0].shape if layer.inputs else ()
        reading = f" so it reads {fmt(x)} as (time={x[0]}, batch={x[1]}, features={x[2]})" if len(x) == 3 else ""
        message = (f"{ref(ctx, layer.name)} ({layer.type}) {evidence}. "
                   f"It was built without batch_first=True,{reading}")
        other_way = ("Or feed it time-major input and index the last step as `out[-1]`" if layer.kind == "rnn" else
                     "Or feed it (sequence, batch, features): `x = x.transpose(0, 1)` before it and after it")
        return self.finding(message, layer, [Fix("Build it batch-first", ctx.recipes.recurrent_batch_first(layer)),
                                             Fix(other_way)])


def _batch_on_time_axis(trace, layer) -> bool:
    """The layer's input grows on axis 0, which it reads as time, when the batch grows by one."""
    other = trace.alternate.layer(layer.name) if trace.alternate else None
    if not (layer.inputs and other is not None and other.inputs):
        return False
    x, y = layer.inputs[0].shape, other.inputs[0].shape
    return len(x) == len(y) == 3 and x[0] == trace.batch and y[0] == trace.batch + 1 and x[1:] == y[1:]
