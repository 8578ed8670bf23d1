from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt


class OneTargetForSeveralOutputs(Rule):
    code = "SC120"
    name = "one-target-for-several-outputs"
    category = "labels_vs_loss"
    summary = "A Keras model with several outputs is given one label array: fit needs one target per output"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        trace, labels = ctx.trace, ctx.labels
        if trace.framework != "keras" or len(trace.outputs) < 2 or labels is None or labels.per_output:
            return
        outputs = ", ".join(f"`{name}` {fmt(meta.shape)}" for name, meta in trace.outputs.items())
        message = (f"the model has {len(trace.outputs)} outputs ({outputs}) but the labels are one array "
                   f"{fmt(labels.shape)}: Keras pairs targets with outputs, one each")
        names = list(trace.outputs)
        targets = ", ".join(f'"{name}": labels_{i + 1}' for i, name in enumerate(names))
        fixes = [Fix("Give one label array per output", f"model.fit(x, {{{targets}}})"),
                 Fix("Or train a model that ends at the output the labels are for",
                     f"keras.Model(model.input, model.get_layer(\"{names[0]}\").output)")]
        yield self.finding(message, None, fixes)
