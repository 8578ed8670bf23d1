from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_site
from shapecheck.rules.predicates import batch_reduction
from shapecheck.shapes import fmt

_VERBS = {"mean": "averages", "sum": "sums", "prod": "multiplies", "amax": "takes the maximum", "max": "takes the maximum",
          "amin": "takes the minimum", "min": "takes the minimum"}


class ReductionOverBatchAxis(Rule):
    code = "SC309"
    name = "reduction-over-batch-axis"
    category = "batch_dim"
    summary = "A mean/sum/max in forward reduces over the batch axis, merging the samples into one"
    subject = "batch"
    explains_failure = True
    supersedes = frozenset({"SC305", "SC402", "SC901"})

    def check(self, ctx):
        op = batch_reduction(ctx.trace)
        if op is None:
            return
        x, out = op.inputs[0].shape, op.outputs[0].shape
        where, _ = op_site(ctx, op)
        message = (f"{where} reduces {fmt(x)} to {fmt(out)}, the same at batch {ctx.trace.alternate.batch}: it "
                   f"{_VERBS.get(op.name, 'reduces')} over the batch axis, so the {ctx.trace.batch} samples become one")
        fixes = [Fix("Reduce over the feature axes, or stack what you meant to average on a new axis first",
                     "torch.stack(tensors).mean(dim=0)  # or x.mean(dim=1)")]
        yield self.finding(message, op.layer or None, fixes, location=op.source)


