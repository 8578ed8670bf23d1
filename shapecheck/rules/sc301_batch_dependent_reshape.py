import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_edit, op_site, ref
from shapecheck.rules.predicates import (
    RESHAPES,
    exported_batch_constant,
    flattened_on_purpose,
    folding_op,
    next_linear,
)
from shapecheck.shapes import fmt


class BatchDependentReshape(Rule):
    code = "SC301"
    name = "batch-dependent-reshape"
    category = "internal_layer"
    summary = "A reshape in forward folds the batch into the features (`view(-1, k)` with the wrong `k`)"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC302", "SC306"})

    def check(self, ctx):
        trace = ctx.trace
        if trace.output is not None and trace.output.shape[:1] not in ((trace.batch,), (-1,)):
            if flattened_on_purpose(ctx):
                return
            op = folding_op(trace, trace.batch)
            if op is not None and op.name in RESHAPES and not exported_batch_constant(trace, op):
                yield self._folded(ctx, op)

    def _folded(self, ctx, op):
        trace = ctx.trace
        before, after = op.inputs[0].shape, op.outputs[0].shape
        message = (f"{op_site(ctx, op)[0]} reshapes {fmt(before)} to {fmt(after)}: "
                   f"the batch of {trace.batch} is folded into the features, so the model returns "
                   f"{fmt(trace.output.shape)} for {trace.batch} samples")
        keep_batch = ctx.recipes.flatten_per_sample().applied_as(op_edit(ctx, op, "flatten_op"))
        fixes = [Fix("Keep the batch axis", keep_batch)]
        consumer = next_linear(ctx, op)
        if consumer is not None:
            fixes.append(Fix(f"and size {ref(ctx, consumer.name)} per sample",
                             ctx.recipes.replace_linear_input(consumer, math.prod(before[1:])), joins=True))
        return self.finding(message, op.layer or None, fixes, location=op.source)


