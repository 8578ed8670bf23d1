from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, loss_ready, op_edit, op_site
from shapecheck.rules.predicates import softmax_axis
from shapecheck.shapes import fmt


class NormalisedOverWrongAxis(Rule):
    code = "SC157"
    name = "normalised-over-wrong-axis"
    category = "activation_vs_loss"
    summary = "The final softmax/log_softmax normalises over another axis than the one the loss reads as classes"

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "categorical" or ctx.loss.input_space == "logits":
            return   # a loss on logits gets SC152 for any softmax before it
        op = final_activation(ctx)
        if op is None or op.name not in ("softmax", "log_softmax") or not op.outputs:
            return
        shape = op.outputs[0].shape
        if shape != ctx.output.shape or len(shape) < 2:
            return   # reshaped or reduced on the way: the axes no longer line up with the output's
        axis, classes = softmax_axis(op, len(shape)), ctx.loss.class_axis % len(shape)
        if axis is None or axis == classes or axis == 0:
            return   # over the batch: SC156
        where, layer = op_site(ctx, op)
        message = (f"{where} normalises {fmt(shape)} over axis {axis} ({shape[axis]} values), but `{ctx.loss.label}` "
                   f"reads the {shape[classes]} classes on axis {classes}: the scores of each position do not sum "
                   "to one over the classes")
        fixes = [Fix("Normalise over the class axis", ctx.recipes.activation_call(op.name, classes),
                         edits=op_edit(ctx, op, "op_dim", classes))]
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source)
