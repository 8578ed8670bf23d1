import math

from shapecheck.edits import Recipe
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_edit, op_site
from shapecheck.shapes import batch_axis, fmt

RESHAPES = ("view", "reshape", "unflatten")


class ReshapeMovesBatchAxis(Rule):
    code = "SC310"
    name = "reshape-moves-batch-axis"
    category = "batch_dim"
    summary = "A view/reshape puts the batch on another axis, as if it were a transpose: samples are scrambled"
    subject = "batch"
    supersedes = frozenset({"SC305"})

    def check(self, ctx):
        found = _moving_reshape(ctx.trace)
        if found is None:
            return
        op, before, after = found
        x, y = op.inputs[0].shape, op.outputs[0].shape
        where, layer = op_site(ctx, op)
        message = (f"{where} reshapes {fmt(x)} to {fmt(y)}: the batch moves from axis {before} to axis {after} "
                   f"without a transpose, so each of the {y[after]} rows along axis {after} mixes values of "
                   "different samples")
        order = [i for i in range(len(x)) if i != before]
        order.insert(after, before)
        same_rank = len(x) == len(y)
        permute = Recipe(f"x = x.permute({', '.join(map(str, order))})", op_edit(ctx, op, "permute_op", tuple(order)))
        fixes = [Fix("Swap axes with a transpose, which moves whole samples",
                     permute if same_rank else "x = x.transpose(...)  # then reshape the other axes"),
                 Fix("Or keep the batch first and build the recurrent or attention layer with batch_first=True")]
        yield self.finding(message, layer, fixes, location=op.source if layer is None else None)


def _moving_reshape(trace):
    """The first reshape whose input and output both carry the batch, on axes with different amounts of data in
    front of them: a view that relabels axes instead of moving them."""
    if trace.alternate is None or len(trace.alternate.ops) != len(trace.ops):
        return None
    for op, other in zip(trace.ops, trace.alternate.ops):
        if op.name not in RESHAPES or other.name != op.name or not op.inputs or not op.outputs:
            continue
        x, y = op.inputs[0].shape, op.outputs[0].shape
        before = batch_axis(x, other.inputs[0].shape)
        after = batch_axis(y, other.outputs[0].shape) if other.outputs else None
        if before is None or after is None or x[before] != y[after]:
            continue   # the batch was folded with another axis or split: not moved
        if math.prod(x[:before]) != math.prod(y[:after]):
            return op, before, after
    return None
