import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_site, ref
from shapecheck.shapes import fmt

RESHAPES = ("view", "reshape", "flatten", "unflatten")


def folding_op(trace, batch: int):
    """The most upstream op on the output's path that takes the batch in and puts something else out."""
    culprit = None
    for op in trace.producer_chain(trace.output_op):
        if op.inputs and op.inputs[0].shape[:1] == (batch,) and op.outputs and \
                op.outputs[0].shape[:1] not in ((batch,), (-1,)):   # -1: a dim shape inference left open
            culprit = op
    return culprit


def flattened_on_purpose(ctx) -> bool:
    """Output rows = batch x positions, and the labels are flattened the same way (a token-level head)."""
    out, labels = ctx.trace.output.shape, ctx.labels
    return bool(out) and out[0] % ctx.trace.batch == 0 and labels is not None and labels.shape[:1] == out[:1]


class BatchDependentReshape(Rule):
    code = "SC301"
    name = "batch-dependent-reshape"
    category = "internal_layer"
    summary = "A reshape in forward folds the batch into the features (`view(-1, k)` with the wrong `k`)"
    explains = frozenset({"forward", "loss:shape"})

    def check(self, ctx):
        trace = ctx.trace
        if frozen_graph_batch(trace):
            return   # SC216: the whole graph was exported for another batch size
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
        fixes = [Fix("Keep the batch axis", ctx.recipes.flatten_per_sample())]
        consumer = next_linear(ctx, op)
        if consumer is not None:
            fixes.append(Fix(f"and size {ref(ctx, consumer.name)} per sample",
                             ctx.recipes.replace_linear_input(consumer, math.prod(before[1:]))))
        return self.finding(message, op.layer or None, fixes, location=op.source)


def exported_batch_constant(trace, op) -> bool:
    """A Reshape in an exported graph whose target holds the export's batch of 1 (SC306)."""
    return trace.framework == "onnx" and op.outputs[0].shape[:1] == (1,)


def frozen_graph_batch(trace) -> bool:
    """An exported graph whose declared input fixes a batch size other than the data's."""
    declared = trace.declared_inputs or []
    return any(wanted.shape and wanted.shape[0] not in (-1, given.shape[0])
               for given, wanted in zip(trace.inputs, declared))


def next_linear(ctx, op):
    """The Linear that consumes an op's output, if one does."""
    for later in ctx.trace.ops[op.index + 1:]:
        if later.name == "linear" and op.index in later.producers:
            layer = ctx.trace.layer(later.layer)
            return layer if layer is not None and layer.kind == "linear" else None
    return None
