import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt

RESHAPES = ("view", "reshape")


class ReshapeSizeMismatch(Rule):
    code = "SC211"
    name = "reshape-size-mismatch"
    category = "internal_layer"
    summary = "A view/reshape in forward hard-codes a feature count that the incoming tensor does not have"

    def check(self, ctx):
        failure = ctx.trace.failure
        if failure is None or failure.op not in RESHAPES or not failure.inputs:
            return
        shape = failure.inputs[0].shape
        per_sample = math.prod(shape[1:])
        target = _target_features(failure)
        site = _failed_site(ctx, failure)
        wanted = f" into {target} features per sample" if target else ""
        message = (f"{site} cannot reshape {fmt(shape)} ({per_sample} features per sample){wanted}: the code assumes "
                   "a different feature-map size than this input produces")
        fixes = [Fix("Flatten per sample", ctx.recipes.flatten_per_sample())]
        consumer = _waiting_linear(ctx, target)
        if consumer is not None:
            fixes.append(Fix(f"and size `{ctx.recipes.display(consumer.name)}` for it",
                             ctx.recipes.replace_linear_input(consumer, per_sample)))
        yield self.finding(message, None, fixes, location=failure.source)


def _target_features(failure) -> int | None:
    """The `k` of `view(-1, k)`: the per-sample size the code asked for."""
    dims = failure.args.get("args", [])
    if len(dims) == 2 and all(isinstance(d, int) for d in dims) and dims[1] > 0:
        return dims[1]
    return None


def _failed_site(ctx, failure) -> str:
    layer = ctx.trace.layer(failure.layer)
    owner = ctx.recipes.display(layer.name) if layer is not None and layer.name else ctx.trace.model_class
    return f"`{failure.op}` in `{owner}.forward`"


def _waiting_linear(ctx, features: int | None):
    """A Linear that never ran and was sized for the features the reshape asked for."""
    for layer in ctx.trace.layers:
        weight = layer.params.get("weight")
        if layer.kind == "linear" and not layer.calls and weight is not None and weight.shape[1] == features:
            return layer
    return None

