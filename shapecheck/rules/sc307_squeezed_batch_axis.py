from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_site
from shapecheck.shapes import fmt


class SqueezedBatchAxis(Rule):
    code = "SC307"
    name = "squeezed-batch-axis"
    category = "batch_dim"
    summary = "A squeeze removes the batch axis when the batch has one sample"
    subject = "loss"
    aspect = "shape"
    explains_failure = True
    supersedes = frozenset({"SC100", "SC302", "SC901"})

    def check(self, ctx):
        trace, alternate = ctx.trace, ctx.trace.alternate
        if trace.batch != 1 or alternate is None:
            return
        for op, other in zip(trace.ops, alternate.ops):
            if op.name != "squeeze" or other.name != "squeeze" or not op.outputs or not other.outputs:
                continue
            if len(op.outputs[0].shape) < len(other.outputs[0].shape):   # one axis more gone at batch 1
                where, _ = op_site(ctx, op)
                message = (f"{where} turns {fmt(op.inputs[0].shape)} into {fmt(op.outputs[0].shape)} for a batch of 1 "
                           f"but {fmt(other.inputs[0].shape)} into {fmt(other.outputs[0].shape)} for a batch of "
                           f"{alternate.batch}: with one sample it removes the batch axis too")
                fixes = [Fix("Remove the squeeze if the tensor is already [N, features], or squeeze an axis that is "
                             "never the batch", "x = x.squeeze(-1)")]
                yield self.finding(message, op.layer or None, fixes, location=op.source)
                return
