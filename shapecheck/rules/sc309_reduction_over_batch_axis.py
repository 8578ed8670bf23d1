from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_site
from shapecheck.shapes import fmt

_VERBS = {"mean": "averages", "sum": "sums", "prod": "multiplies", "amax": "takes the maximum", "max": "takes the maximum",
          "amin": "takes the minimum", "min": "takes the minimum"}
REDUCTIONS = ("mean", "sum", "amax", "amin", "max", "min", "prod", "std", "var", "logsumexp", "median")


class ReductionOverBatchAxis(Rule):
    code = "SC309"
    name = "reduction-over-batch-axis"
    category = "batch_dim"
    summary = "A mean/sum/max in forward reduces over the batch axis, merging the samples into one"
    explains = frozenset({"forward"})

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


def batch_reduction(trace):
    """The reduction on the way to the output (or to the failed op) whose input's axis 0 follows the batch (N, or
    N·k after a cat) while its output does not, comparing the traces at N and N+1."""
    alternate = trace.alternate
    if alternate is None or trace.batch is None:
        return None
    used = _ancestors(trace, [trace.output_op, *(trace.failure.producers if trace.failure else [])])
    for op, other in zip(trace.ops, alternate.ops):
        if op.name not in REDUCTIONS or op.index not in used or not op.inputs or not op.outputs:
            continue
        x, y = op.inputs[0].shape, other.inputs[0].shape if other.inputs else ()
        out, other_out = op.outputs[0].shape, other.outputs[0].shape if other.outputs else ()
        if x and y and x[0] != y[0] and x[1:] == y[1:] and out == other_out and len(out) < len(x):
            return op
    return None


def _ancestors(trace, starts) -> set[int]:
    """Every op whose result reaches one of `starts` (the output, the failed op's inputs)."""
    seen, stack = set(), [i for i in starts if i is not None and i >= 0]
    while stack:
        index = stack.pop()
        if index in seen or index >= len(trace.ops):
            continue
        seen.add(index)
        stack.extend(p for p in trace.ops[index].producers if p is not None and p >= 0)
    return seen
