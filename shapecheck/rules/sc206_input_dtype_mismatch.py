from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import fed_by_model_input, ref
from shapecheck.shapes import fmt, is_float


class InputDtypeMismatch(Rule):
    code = "SC206"
    name = "input-dtype-mismatch"
    category = "dtype"
    summary = "A layer receives a dtype its weights cannot take (float64 numpy data, integer pixels, float token ids)"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC201", "SC901"})

    def check(self, ctx):
        if ctx.trace.framework == "onnx":
            mismatch = next(((i, given, wanted) for i, (given, wanted)
                             in enumerate(zip(ctx.trace.inputs, ctx.trace.declared_inputs or []))
                             if given.dtype != wanted.dtype), None)
            if mismatch is not None:   # a runtime takes each input in exactly its declared type
                index, given, wanted = mismatch
                name = ctx.trace.input_names[index] if index < len(ctx.trace.input_names) else f"input {index}"
                message = (f"the graph declares `{name}` as {wanted.dtype}, but the data is {given.dtype}: "
                           "onnxruntime refuses any other type")
                yield self.finding(message, None, [Fix(f"Cast the batch to {wanted.dtype} before running the graph",
                                                       f"x = x.astype(np.{wanted.dtype})")])
                return
        failure = ctx.trace.failure
        layer = ctx.trace.layer(failure.layer) if failure else None
        if layer is None or not layer.inputs or layer.weight is None:
            return
        x, weight = layer.inputs[0], layer.weight
        if layer.kind == "embedding":
            if is_float(x.dtype):
                message = f"{ref(ctx, layer.name)} ({layer.type}) needs integer ids but receives {x.dtype} {fmt(x.shape)}"
                yield self.finding(message, layer, [Fix("Pass token ids as int64", ctx.recipes.cast_input("int64"))])
            return
        if x.dtype == weight.dtype:
            return
        source = "the input" if fed_by_model_input(ctx, layer) else "its input"
        message = (f"{ref(ctx, layer.name)} ({layer.type}) has {weight.dtype} weights but {source} {fmt(x.shape)} is "
                   f"{x.dtype}")
        fixes = [Fix(f"Cast the data to {weight.dtype} once, where it is loaded", ctx.recipes.cast_input(weight.dtype))]
        if x.dtype == "float64":
            fixes.append(Fix("numpy arrays default to float64: convert with `X.astype(np.float32)`"))
        yield self.finding(message, layer, fixes)


