from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref, site
from shapecheck.shapes import fmt

# ops whose output has no gradient with respect to their input, by definition
_NO_GRADIENT = {"argmax", "argmin", "argsort", "round", "floor", "ceil", "sign", "long", "int", "bool", "eq", "ne",
                "gt", "lt", "ge", "le"}


class ParametersWithoutGradient(Rule):
    code = "SC401"
    name = "parameters-without-gradient"
    category = "internal_layer"
    summary = "Trainable layers get no gradient from the loss (measured): they never learn"
    subject = "signal"   # measured; a rule that names the cause (a softmax over one output) explains it
    supersedes = frozenset({"SC405"})

    def check(self, ctx):
        audit = ctx.trace.audit
        if audit is None or audit.unreached is None:
            return
        unreached, stop = audit.unreached, audit.unreached.stop
        names = unreached.partial or unreached.layers   # a layer that lost only some of its parameters: name those
        shown = ", ".join(ref(ctx, name) if name else f"`{ctx.trace.model_class}`" for name in names[:4])
        more = f" and {len(names) - 4} more" if len(names) > 4 else ""
        noun = "parameter" if unreached.partial else "layer"
        message = (f"no gradient reaches {len(names)} {noun}{'s' if len(names) > 1 else ''} ({shown}{more}; "
                   f"{unreached.values:,} of {unreached.total:,} trainable values) from the loss, measured on "
                   f"{audit.samples} samples at initialisation and after {unreached.steps} training steps")
        if stop is not None and stop.op == "no_grad":
            message += f": `{stop.layer or ctx.trace.model_class}` runs under `torch.no_grad()`"
        elif stop is not None:
            message += f": it stops at `{stop.spelling}` {site(stop.layer, ctx)}, whose input {fmt(stop.shape)} " \
                       "gets none"
        layer = ctx.trace.layer(stop.layer if stop is not None and stop.layer else unreached.layers[0])
        location = stop.source if stop is not None and stop.source is not None else layer.source if layer else None
        # inside a layer whose other parameters learn, the cut may be by design: a warning, not an error
        yield self.finding(message, layer, [_fix(stop)], location=location,
                           severity="warning" if unreached.partial else None)


def _fix(stop) -> Fix:
    if stop is None:
        return Fix("Find where these layers' output stops reaching the loss (a detached tensor, an output the loss "
                   "never reads); to freeze them on purpose, set `requires_grad_(False)`")
    if stop.op in ("detach", "stop_gradient", "no_grad"):
        return Fix(f"Remove the `{stop.spelling}` on the path to the loss; to freeze these layers on purpose, set "
                   "`requires_grad_(False)` on them instead")
    if stop.op in _NO_GRADIENT:
        return Fix(f"`{stop.spelling}` has no gradient: train on the scores before it, and apply `{stop.spelling}` "
                   "only to the predictions you read")
    return Fix(f"The gradient through `{stop.spelling}` is exactly zero there: look for an axis of size 1, a mask of "
               "zeros or an activation every value saturates")
