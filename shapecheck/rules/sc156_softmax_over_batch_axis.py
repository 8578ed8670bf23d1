from shapecheck.findings import Fix, Subject
from shapecheck.rules import Rule
from shapecheck.rules.common import op_edit, op_site
from shapecheck.rules.predicates import softmax_axis
from shapecheck.shapes import fmt


class SoftmaxOverBatchAxis(Rule):
    code = "SC156"
    name = "softmax-over-batch-axis"
    category = "activation_vs_loss"
    summary = "A softmax or log_softmax normalises over the batch axis (dim=0, or no dim on a 3-D tensor)"
    subject = "op"   # the softmax/log_softmax op that normalises
    supersedes = frozenset({"SC157", "SC402", "SC403", "SC404"})

    def check(self, ctx):
        for op in ctx.trace.ops:
            if op.name not in ("softmax", "log_softmax") or not op.inputs or len(op.inputs[0].shape) < 2:
                continue
            shape = op.inputs[0].shape
            if softmax_axis(op, len(shape)) != 0 or not _axis0_is_batch(ctx.trace, op):
                continue
            where, layer = op_site(ctx, op)
            implicit = "" if op.args.get("dim") is not None or op.args.get("args") else \
                " (no `dim` given: PyTorch picks 0 for 3-D input)"
            message = (f"{where} normalises {fmt(shape)} over axis 0, the batch{implicit}: each sample's "
                       "probabilities depend on the rest of the batch")
            axis = _target_axis(shape)
            fixes = [Fix("Normalise over the classes (or positions), not the batch",
                         ctx.recipes.activation_call(op.name, axis).applied_as(op_edit(ctx, op, "op_dim", axis)))]
            yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source,
                           subject=Subject("op", name=str(op.index)))
            return


def _axis0_is_batch(trace, op) -> bool:
    """Axis 0 follows the batch: N at batch N and N+1 at batch N+1 (a weight or a time axis does not)."""
    alternate = trace.alternate
    if op.inputs[0].shape[0] != trace.batch or alternate is None or op.index >= len(alternate.ops):
        return False
    twin = alternate.ops[op.index]
    return twin.name == op.name and bool(twin.inputs) and twin.inputs[0].shape[0] == alternate.batch


def _target_axis(shape: tuple) -> int:
    """Classes sit on axis 1 of [N, C] and last in [N, T, C]; attention scores [N, T, 1] normalise over T."""
    if len(shape) == 2:
        return 1
    if shape[-1] > 1:
        return -1
    return next((i for i in range(1, len(shape)) if shape[i] > 1), 1)
