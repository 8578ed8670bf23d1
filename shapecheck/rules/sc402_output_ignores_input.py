from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import measured, site

_CASTS = {"long", "int", "to", "round", "floor", "ceil", "type", "sign"}
_SATURATING = {"sigmoid", "tanh", "hardsigmoid", "hardtanh", "clamp", "relu", "softmax"}


class OutputIgnoresInput(Rule):
    code = "SC402"
    name = "output-ignores-input"
    category = "internal_layer"
    summary = "The output is the same whatever the input (measured): the model cannot learn anything about it"
    subject = "signal"

    def check(self, ctx):
        head = measured(ctx)
        if head is None or head.constant is None:
            return
        constant = head.constant
        low, high = constant.value_range
        values = f"every value {low:.4g}" if low == high else f"values in [{low:.4g}, {high:.4g}]"
        message = (f"the output does not depend on the input: giving every sample another sample's input left it "
                   f"unchanged ({values}), at initialisation and after training steps")
        if constant.op:
            message += f"; the input's variation stops at `{constant.op}` {site(constant.layer, ctx)}"
        layer = ctx.trace.layer(constant.layer) if constant.layer else ctx.head
        yield self.finding(message, layer, [_fix(constant.op)], location=constant.source or (layer.source if layer
                                                                                             else None))


def _fix(op: str) -> Fix:
    if op in _CASTS:
        return Fix(f"`{op}` maps every input to the same value: scale the input to the range the cast expects (ids "
                   "0..N-1 for an embedding), or keep it a float")
    if op in _SATURATING:
        return Fix(f"every value saturates at `{op}`: normalise the input (zero mean, unit variance) before the "
                   "model")
    return Fix("Find the op after which the output stops changing with the input (a constant branch, a mask of "
               "zeros, an input overwritten)")
