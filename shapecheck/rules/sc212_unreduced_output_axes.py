from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape, ref
from shapecheck.rules.predicates import extra_axes_source
from shapecheck.shapes import fmt


class UnreducedOutputAxes(Rule):
    code = "SC212"
    name = "unreduced-output-axes"
    category = "internal_layer"
    summary = "The output keeps time steps or a spatial grid that per-sample labels do not have"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC102"})

    def check(self, ctx):
        if ctx.trace.framework == "onnx":
            return   # an exported graph's layers are fixed: its recipes (pool, flatten, last step) cannot apply
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
            kept = f"{grid[0]} positions" if len(grid) == 1 else f"{'x'.join(map(str, grid))} grid"
            per_sample = "value" if len(ctx.labels.shape) == 1 or ctx.loss.wants_class_indices else "row"
            message = (f"the output {fmt(out)} keeps the {kept} of the feature map from {ref(ctx, layer.name)} "
                       f"({layer.type}), but the labels {fmt(ctx.labels.shape)} have one {per_sample} per sample")
            head = ctx.head or layer
            fixes = [Fix("Pool the map after the conv head", ctx.recipes.pool_after(head)) if head.kind == "conv"
                     else Fix("Pool or flatten the map before the head", ctx.recipes.pool_before(head))]
        yield self.finding(message, layer, fixes)


