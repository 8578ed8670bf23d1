from shapecheck.findings import Fix, Severity
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.shapes import fmt


class ForwardFailed(Rule):
    code = "SC901"
    name = "forward-failed"
    category = "internal_layer"
    summary = "The forward pass raised; reports the layer, its input shapes and the error"
    subject = "forward"   # the catch-all for the forward pass: rules that explain the failure supersede it

    def check(self, ctx):
        failure = ctx.trace.failure
        if failure is None:
            return
        layer = ctx.trace.layer(failure.layer)
        ran = sum(1 for item in ctx.trace.layers if item.calls and item.is_leaf and item.name != failure.layer)
        shapes = ", ".join(fmt(t.shape) for t in failure.inputs) or "no tensors"
        where = f"{ref(ctx, layer.name)} ({layer.type})" if layer is not None and layer.name else f"`{ctx.trace.model_class}`"
        op = f" in `{failure.op_spelling}`" if failure.op else ""
        message = f"{where} failed{op} with inputs {shapes}: {failure.exception}: {failure.message}"
        layers = "1 layer" if ran == 1 else f"{ran} layers"
        fixes = [Fix(f"{layers} ran before it; `shapecheck check --format json` lists their shapes")] if ran else []
        severity: Severity | None = None
        if failure.random_values:   # shapecheck's random lengths or masks may be what failed, not the model
            message = f"with random input values (the forward reads them), {message}"
            fixes.insert(0, Fix("Give real input values: `--input-file inputs.npz` (`np.savez(path, x, lengths)`) "
                                "or a factory that returns `(model, example_inputs)`"))
            severity = "warning"
        yield self.finding(message, layer if layer is not None and layer.name else None, fixes, severity=severity)
