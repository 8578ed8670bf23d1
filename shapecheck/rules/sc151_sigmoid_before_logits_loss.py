from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_site


class SigmoidBeforeLogitsLoss(Rule):
    code = "SC151"
    name = "sigmoid-before-logits-loss"
    category = "activation_vs_loss"
    summary = "The output already went through a sigmoid, and the loss applies another one"

    def check(self, ctx):
        if ctx.loss is None or ctx.loss.name != "BCEWithLogitsLoss":
            return
        op = final_activation(ctx)
        if op is None or op.name != "sigmoid":
            return
        where, layer = op_site(ctx, op)
        message = (f"{where} applies a sigmoid before `{ctx.loss.name}`, which applies its own: predictions are "
                   "squeezed into [0.5, 0.73] and training stalls")
        fixes = [Fix("Return raw logits from the model (remove the sigmoid)"),
                 Fix("Or keep the sigmoid and use a loss on probabilities", ctx.recipes.loss("BCELoss"))]
        yield self.finding(message, layer or op.layer or None, fixes, location=(layer.source if layer else op.source))
