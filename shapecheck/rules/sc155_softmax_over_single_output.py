from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_edit, op_site
from shapecheck.rules.predicates import softmax_axis
from shapecheck.shapes import fmt


class SoftmaxOverSingleOutput(Rule):
    code = "SC155"
    name = "softmax-over-single-output"
    category = "activation_vs_loss"
    summary = "A softmax over an axis of size 1 always outputs 1.0: the model predicts one value for everything"
    supersedes = frozenset({"SC401", "SC402", "SC403", "SC404", "SC405"})

    def check(self, ctx):
        op = final_activation(ctx)
        if op is None or op.name != "softmax" or not op.inputs:
            return
        shape = op.inputs[0].shape
        axis = softmax_axis(op, len(shape))
        if axis is None or shape[axis] != 1:
            return
        where, layer = op_site(ctx, op)
        message = (f"{where} normalises over an axis of size 1 in {fmt(shape)}: every output is exactly 1.0, so "
                   "nothing is learnt")
        if layer is not None and layer.kind == "linear":   # Dense(1, activation="softmax")
            sigmoid = ctx.recipes.replace_head(layer, 1, "sigmoid")
        elif ctx.trace.framework == "torch":   # the softmax call itself becomes the sigmoid
            sigmoid = ctx.recipes.end_with("sigmoid").applied_as(op_edit(ctx, op, "swap_op", "sigmoid"))
        else:
            sigmoid = ctx.recipes.end_with("sigmoid")
        fixes = [Fix("For one output per sample use a sigmoid", sigmoid),
                 Fix("Or give the head one output per class and keep the softmax")]
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source)


