from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt


class FrozenBatchDimension(Rule):
    code = "SC216"
    name = "frozen-batch-dimension"
    category = "batch_dim"
    summary = "The model or exported graph fixes its batch size, and the data comes in other batch sizes"
    subject = "loss"
    aspect = "shape"
    explains_failure = True
    supersedes = frozenset({"SC100", "SC301", "SC302", "SC306", "SC901"})

    def check(self, ctx):
        declared = ctx.trace.declared_inputs or []
        for index, (given, wanted) in enumerate(zip(ctx.trace.inputs, declared)):
            if not wanted.shape or wanted.shape[0] in (-1, given.shape[0]):
                continue
            fixed = wanted.shape[0]
            if ctx.trace.framework == "keras":   # `Input(batch_shape=...)`, which stateful RNNs require
                message = (f"input {index} of the model declares a batch of {fixed} ({fmt(wanted.shape)}), but the "
                           f"data comes in batches of {given.shape[0]}: every other batch size is rejected")
                sample = ", ".join(map(str, wanted.shape[1:]))
                fixes = [Fix(f"Train in batches of {fixed}", f"model.fit(x, y, batch_size={fixed})"),
                         Fix("Or declare the batch you train with",
                             f"keras.Input(batch_shape=({given.shape[0]}, {sample}))")]
            else:
                message = (f"input {index} of the graph has its batch fixed to {fixed} ({fmt(wanted.shape)}), but the "
                           f"data comes in batches of {given.shape[0]}: the runtime rejects every other batch size")
                fixes = [Fix("Re-export with a dynamic batch axis; the `dynamic_axes` key must be the input's name",
                             ctx.recipes.dynamic_batch_export(_name(ctx, index)))]
            yield self.finding(message, None, fixes)


def _name(ctx, index: int) -> str:
    names = ctx.trace.input_names
    return names[index] if index < len(names) else "input"
