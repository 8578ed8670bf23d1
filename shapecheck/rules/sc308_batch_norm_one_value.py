import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.shapes import fmt


class BatchNormOneValue(Rule):
    code = "SC308"
    name = "batch-norm-one-value"
    category = "batch_dim"
    summary = "A BatchNorm in training mode gets one value per channel (a batch of 1 after global pooling)"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        failure = ctx.trace.failure
        layer = ctx.trace.layer(failure.layer) if failure else None
        if layer is None or "BatchNorm" not in layer.type or not layer.inputs:
            return
        x = layer.inputs[0].shape
        per_channel = math.prod(x) // x[1] if len(x) >= 2 and x[1] else 0
        if per_channel != 1:
            return
        message = (f"{ref(ctx, layer.name)} ({layer.type}) gets {fmt(x)}: one value per channel, from which training "
                   f"cannot compute a batch mean and variance; it happens when a batch holds {ctx.trace.batch} "
                   "sample" + ("s" if ctx.trace.batch != 1 else "") + " (the last batch of an epoch)")
        fixes = [Fix("Drop the last, incomplete batch", "DataLoader(dataset, batch_size=..., drop_last=True)"),
                 Fix("Or normalise without batch statistics",
                     f"{ctx.recipes.path(layer.name)} = nn.GroupNorm(32, {x[1]})" if x[1] % 32 == 0
                     else f"{ctx.recipes.path(layer.name)} = nn.GroupNorm(1, {x[1]})")]
        yield self.finding(message, layer, fixes)
