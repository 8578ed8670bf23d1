import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import requested_sizes
from shapecheck.shapes import fmt

RESHAPES = ("view", "reshape")


class ReshapeSizeMismatch(Rule):
    code = "SC211"
    name = "reshape-size-mismatch"
    category = "internal_layer"
    summary = "A view/reshape in forward hard-codes a size that the incoming tensor does not have"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        failure = ctx.trace.failure
        if failure is None or failure.op not in RESHAPES or not failure.inputs:
            return
        shape = failure.inputs[0].shape
        per_sample = math.prod(shape[1:])
        requested = requested_sizes(failure)
        target = math.prod(requested[1:]) if len(requested) >= 2 and all(d > 0 for d in requested[1:]) else None
        site = _failed_site(ctx, failure)
        asked = f" into {tuple(requested)}" if requested else ""
        message = (f"{site} cannot reshape {fmt(shape)} ({per_sample} values per sample){asked}: the code assumes "
                   f"{target if target else 'a different number of'} values per sample")
        if len(requested) > 2:
            fixes = self._unflatten_fixes(ctx, failure, target)
        else:
            fixes = [Fix("Flatten per sample", ctx.recipes.flatten_per_sample())]
            consumer = _waiting_linear(ctx, target)
            if consumer is not None:
                fixes.append(Fix(f"and size `{ctx.recipes.display(consumer.name)}` for it",
                                 ctx.recipes.replace_linear_input(consumer, per_sample), joins=True))
        yield self.finding(message, None, fixes, location=failure.source)

    def _unflatten_fixes(self, ctx, failure, target: int | None) -> list[Fix]:
        """`fc(z).view(-1, 64, 8, 8)`: the layer before must produce exactly the values the view unpacks."""
        producer = ctx.trace.upstream_layer(failure.producers[0] if failure.producers else None)
        if target is None:
            return [Fix("The sizes the view fixes must divide the values per sample; change the shape or the layer "
                        "before it")]
        if producer is not None and producer.kind == "linear":
            return [Fix(f"Make `{ctx.recipes.display(producer.name)}` produce {target} values per sample",
                        ctx.recipes.replace_head(producer, target))]
        return [Fix(f"Make the tensor hold {target} values per sample before the reshape, or change the shape")]


def _failed_site(ctx, failure) -> str:
    layer = ctx.trace.layer(failure.layer)
    if ctx.trace.framework == "onnx":
        kind = layer.type if layer else failure.op
        return f"the `{kind}` node" + (f" of `{failure.layer}`" if failure.layer != kind else "")
    owner = ctx.recipes.display(layer.name) if layer is not None and layer.name else ctx.trace.model_class
    return f"`{failure.op}` in `{owner}.forward`"


def _waiting_linear(ctx, features: int | None):
    """A Linear that never ran and was sized for the features the reshape asked for."""
    for layer in ctx.trace.layers:
        if layer.kind == "linear" and not layer.calls and layer.config.get("in_features") == features:
            return layer
    return None
