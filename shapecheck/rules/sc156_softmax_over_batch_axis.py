from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_site
from shapecheck.rules.sc155_softmax_over_single_output import _softmax_axis
from shapecheck.shapes import fmt


class SoftmaxOverBatchAxis(Rule):
    code = "SC156"
    name = "softmax-over-batch-axis"
    category = "activation_vs_loss"
    summary = "A softmax or log_softmax normalises over the batch axis (dim=0, or no dim on a 3-D tensor)"

    def check(self, ctx):
        batch = ctx.trace.batch
        for op in ctx.trace.ops:
            if op.name not in ("softmax", "log_softmax") or not op.inputs or len(op.inputs[0].shape) < 2:
                continue
            shape = op.inputs[0].shape
            if _softmax_axis(op, len(shape)) != 0 or shape[0] != batch:
                continue
            where, layer = op_site(ctx, op)
            implicit = " (no `dim` given: PyTorch picks 0 for 3-D input)" if "dim" not in op.args else ""
            message = (f"{where} normalises {fmt(shape)} over axis 0, the batch{implicit}: each sample's "
                       "probabilities depend on the rest of the batch")
            fixes = [Fix("Normalise over the axis that holds the classes or positions, not the batch",
                         ctx.recipes.end_with(op.name))]
            yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source)
            return
