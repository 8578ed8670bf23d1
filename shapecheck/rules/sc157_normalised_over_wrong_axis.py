from shapecheck.findings import Fix, Subject
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, loss_ready, op_edit, op_site
from shapecheck.rules.predicates import softmax_axis
from shapecheck.shapes import fmt


class NormalisedOverWrongAxis(Rule):
    code = "SC157"
    name = "normalised-over-wrong-axis"
    category = "activation_vs_loss"
    summary = "The final softmax/log_softmax normalises over another axis than the one the loss reads as classes"
    subject = "op"   # the softmax/log_softmax op that normalises
    supersedes = frozenset({"SC403", "SC404"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "categorical":
            return
        op = final_activation(ctx)
        if op is None or op.name not in ("softmax", "log_softmax") or not op.outputs:
            return
        shape = op.outputs[0].shape
        if shape != ctx.output.shape or len(shape) < 2:
            return   # reshaped or reduced on the way: the axes no longer line up with the output's
        axis, classes = softmax_axis(op, len(shape)), ctx.loss.class_axis % len(shape)
        if axis is None or axis == classes:
            return
        where, layer = op_site(ctx, op)
        message = (f"{where} normalises {fmt(shape)} over axis {axis} ({shape[axis]} values), but `{ctx.loss.label}` "
                   f"reads the {shape[classes]} classes on axis {classes}: the scores of each position do not sum "
                   "to one over the classes")
        normalise = ctx.recipes.activation_call(op.name, classes).applied_as(op_edit(ctx, op, "op_dim", classes))
        fixes = [Fix("Normalise over the class axis", normalise)]
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source,
                           subject=Subject("op", name=str(op.index)))
