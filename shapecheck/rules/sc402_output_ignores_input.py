from shapecheck.audit import STEPS
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import measured, site

_CASTS = {"long", "int", "to", "round", "floor", "ceil", "type", "sign", "bucketize"}
_SATURATING = {"sigmoid", "tanh", "hardsigmoid", "hardtanh", "clamp", "relu", "softmax"}


class OutputIgnoresInput(Rule):
    code = "SC402"
    name = "output-ignores-input"
    category = "internal_layer"
    summary = "The output is the same whatever the input (measured): the model cannot learn anything about it"
    subject = "signal"
    supersedes = frozenset({"SC405"})

    def check(self, ctx):
        head = measured(ctx)
        if head is None or head.constant is None:
            return
        constant, made_up = head.constant, ctx.trace.audit.made_up_inputs
        low, high = constant.value_range
        values = f"every value {low:.4g}" if low == high else f"values in [{low:.4g}, {high:.4g}]"
        message = (f"the output does not depend on the input: giving every sample another sample's input left it "
                   f"unchanged ({values}), at initialisation and after {STEPS} training steps")
        if constant.op:
            message += f"; the input's variation stops at `{constant.op}` {site(constant.layer, ctx)}"
        # a cast or a saturating unit stops the variation of standard-normal stand-ins, maybe not of the real data
        range_dependent = made_up and constant.op in _CASTS | _SATURATING
        if range_dependent:
            message += " (on standard-normal inputs; the model may expect another range)"
        layer = ctx.trace.layer(constant.layer) if constant.layer else ctx.head
        fixes = [_fix(constant.op)] + ([Fix("Check it on real samples: --input-file with a batch of your data")]
                                       if range_dependent else [])
        yield self.finding(message, layer, fixes, location=constant.source or (layer.source if layer else None),
                           severity="warning" if range_dependent else None)


def _fix(op: str) -> Fix:
    if op in _CASTS:
        return Fix(f"`{op}` maps every input to the same value: scale the input to the range the cast expects (ids "
                   "0..N-1 for an embedding), or keep it a float")
    if op in _SATURATING:
        return Fix(f"every value saturates at `{op}`: normalise the input (zero mean, unit variance) before the "
                   "model")
    return Fix("Find the op after which the output stops changing with the input (a constant branch, a mask of "
               "zeros, an input overwritten)")
