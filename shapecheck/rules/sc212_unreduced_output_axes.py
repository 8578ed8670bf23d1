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
    return 2 if _one_value_per_sample(ctx) else max(len(lab), 2)


def _one_value_per_sample(ctx) -> bool:
    """Labels like [N], [N, 1] or [N, 1, 1]."""
    return all(d == 1 for d in ctx.labels.shape[1:])


class UnreducedOutputAxes(Rule):
    code = "SC212"
    name = "unreduced-output-axes"
    category = "internal_layer"
    summary = "The output keeps time steps or a spatial grid that per-sample labels do not have"
    explains = frozenset({"loss:shape"})

    def check(self, ctx):
        out = ctx.output.shape if ctx.output is not None else ()
        source = extra_axes_source(ctx)
        if source is None:
            return
        kind, layer = source
        if kind == "input":
            message = (f"the output {fmt(out)} keeps the input's extra axes: {ref(ctx, layer.name)} ({layer.type}) "
                       f"acts on the last axis of {fmt(layer.inputs[0].shape)} only, but the labels "
                       f"{fmt(ctx.labels.shape)} have one value per sample")
            fixes = [Fix("Flatten the input first", ctx.recipes.flatten_per_sample())]
        elif kind == "sequence":
            message = (f"the output {fmt(out)} has one prediction per time step because {ref(ctx, layer.name)} "
                       f"({layer.type}) returns every step, but the labels {fmt(ctx.labels.shape)} have one per sample")
            fixes = [Fix("Keep only the last step for a many-to-one model", ctx.recipes.return_last_step(layer))]
        else:
            grid = index_target_shape(ctx)[1:]
            message = (f"the output {fmt(out)} keeps the {'x'.join(map(str, grid))} grid of the feature map "
                       f"from {ref(ctx, layer.name)} ({layer.type}), but the labels {fmt(ctx.labels.shape)} have one "
                       "value per sample")
            head = ctx.trace.head_layer() or layer
            fixes = [Fix("Pool the map after the conv head", ctx.recipes.pool_after(head)) if head.kind == "conv"
                     else Fix("Pool or flatten the map before the head", ctx.recipes.pool_before(head))]
        yield self.finding(message, layer, fixes)


def extra_axes_source(ctx):
    """(kind, layer) when the output has more axes than the labels call for: the recurrent layer, the feature map
    or the input whose axes were never reduced. None when a Linear on a 4-D map explains it (SC202)."""
    if not loss_ready(ctx) or not same_batch(ctx) or ctx.labels.dtype == "str":
        return None
    if len(ctx.output.shape) <= _expected_rank(ctx) or index_target_shape(ctx)[1:] == ctx.labels.shape[1:]:
        return None
    for op in ctx.trace.producer_chain(ctx.trace.output_op):
        layer = ctx.trace.layer(op.layer)
        if layer is None:
            continue
        if layer.kind == "rnn":
            return ("sequence", layer) if layer.config.get("return_sequences", True) else None
        if layer.kind == "linear" and layer.inputs and len(layer.inputs[0].shape) >= 4:
            return None
        # a 1-D map ([N, L, C] or [N, C, L]) only counts against labels of one value per sample
        min_rank = 3 if _one_value_per_sample(ctx) else 4
        if layer.kind in ("conv", "pool") and layer.output is not None and len(layer.output.shape) >= min_rank:
            return "map", layer
        if layer.kind == "linear" and layer.inputs and len(layer.inputs[0].shape) >= 3 and \
                layer.input_producers[:1] == [-1]:
            return "input", layer
    return None
