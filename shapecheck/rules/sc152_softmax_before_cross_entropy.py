from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_site


class SoftmaxBeforeCrossEntropy(Rule):
    code = "SC152"
    name = "softmax-before-cross-entropy"
    category = "activation_vs_loss"
    summary = "The output already went through a softmax, and the cross-entropy applies log-softmax again"

    def check(self, ctx):
        if ctx.loss is None or ctx.loss.name != "CrossEntropyLoss":
            return
        op = final_activation(ctx)
        if op is None or op.name not in ("softmax", "sigmoid"):
            return
        where, layer = op_site(ctx, op)
        message = (f"{where} applies a {op.name} before `{ctx.loss.name}`, which expects raw logits: the loss works on "
                   "probabilities squashed into [0, 1], gradients vanish and training plateaus")
        fixes = [Fix(f"Return raw logits from the model (remove the {op.name}; apply it only at inference)"),
                 Fix("Or keep log-probabilities and use the matching loss", ctx.recipes.loss("NLLLoss")
                     + "  # after log_softmax")]
        yield self.finding(message, layer or op.layer or None, fixes, location=(layer.source if layer else op.source))
