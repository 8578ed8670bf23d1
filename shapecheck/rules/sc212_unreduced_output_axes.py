from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape, loss_ready, ref, same_batch
from shapecheck.shapes import fmt


def _expected_rank(ctx) -> int:
    """The output rank the labels call for."""
    lab = ctx.labels.shape
    if ctx.loss.wants_class_indices:
        trailing = 1 if ctx.loss.lenient and len(lab) >= 2 and lab[-1] == 1 else 0
        return len(lab) - trailing + 1
    return max(len(lab), 2)


class UnreducedOutputAxes(Rule):
    code = "SC212"
    name = "unreduced-output-axes"
    category = "internal_layer"
    summary = "The output keeps time steps or a spatial grid that per-sample labels do not have"

    def check(self, ctx):
        if not loss_ready(ctx) or not same_batch(ctx) or ctx.labels.dtype == "str":
            return
        out = ctx.output.shape
        extra = len(out) - _expected_rank(ctx)
        if extra <= 0 or index_target_shape(ctx)[1:] == ctx.labels.shape[1:]:
            return
        source = _source_of_extra_axes(ctx)
        if source is None:
            return
        kind, layer = source
        if kind == "sequence":
            message = (f"the output {fmt(out)} has one prediction per time step because {ref(ctx, layer.name)} "
                       f"({layer.type}) returns every step, but the labels {fmt(ctx.labels.shape)} have one per sample")
            fixes = [Fix("Keep only the last step for a many-to-one model", ctx.recipes.return_last_step(layer))]
        else:
            message = (f"the output {fmt(out)} keeps the {'x'.join(map(str, out[1:-1]))} grid of the feature map "
                       f"from {ref(ctx, layer.name)} ({layer.type}), but the labels {fmt(ctx.labels.shape)} have one "
                       "value per sample")
            head = ctx.trace.head_layer() or layer
            fixes = [Fix("Pool or flatten the map before the head", ctx.recipes.pool_before(head))]
        yield self.finding(message, layer, fixes)


def _source_of_extra_axes(ctx):
    """Walk up from the output to the recurrent layer or the feature map that left the extra axes."""
    for op in ctx.trace.producer_chain(ctx.trace.output_op):
        layer = ctx.trace.layer(op.layer)
        if layer is None:
            continue
        if layer.kind == "rnn":
            return ("sequence", layer) if layer.config.get("return_sequences", True) else None
        if layer.kind in ("conv", "pool") and layer.output is not None and len(layer.output.shape) >= 4:
            return "map", layer
    return None
