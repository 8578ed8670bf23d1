from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_site


class SigmoidBeforeLogitsLoss(Rule):
    code = "SC151"
    name = "sigmoid-before-logits-loss"
    category = "activation_vs_loss"
    summary = "The output already went through a sigmoid, and a binary loss on logits applies another one"

    def check(self, ctx):
        loss = ctx.loss
        if loss is None or loss.family != "binary" or loss.input_space != "logits":
            return
        op = final_activation(ctx)
        if op is None or op.name != "sigmoid":
            return
        where, layer = op_site(ctx, op)
        message = (f"{where} applies a sigmoid before `{loss.label}`, which applies its own: predictions are "
                   "squeezed into [0.5, 0.73] and training stalls")
        fixes = [Fix("Return raw logits from the model (remove the sigmoid)"),
                 Fix("Or keep the sigmoid and use the loss on probabilities", ctx.recipes.probability_loss(loss))]
        yield self.finding(message, layer or op.layer or None, fixes, location=(layer.source if layer else op.source))
