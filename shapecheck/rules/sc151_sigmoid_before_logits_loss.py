from shapecheck.edits import Recipe
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_edit, op_site


class SigmoidBeforeLogitsLoss(Rule):
    code = "SC151"
    name = "sigmoid-before-logits-loss"
    category = "activation_vs_loss"
    summary = "The output already went through a sigmoid (or softmax, tanh), and a binary loss on logits applies a sigmoid"
    supersedes = frozenset({"SC403", "SC404"})

    def check(self, ctx):
        loss = ctx.loss
        if loss is None or loss.family != "binary" or loss.input_space != "logits":
            return
        op = final_activation(ctx)
        if op is None or op.name not in REACHABLE:
            return
        where, layer = op_site(ctx, op)
        reach = REACHABLE[op.name]
        if op.name == "sigmoid":
            message = (f"{where} applies a sigmoid before `{loss.label}`, which applies its own: predictions are "
                       f"squeezed into {reach} and training stalls")
        else:
            message = (f"{where} applies a {op.name} before `{loss.label}`, which applies a sigmoid of its own: "
                       f"predictions can only reach {reach}, so the loss never gets near 0 and training stalls")
        fixes = [Fix(f"Return raw logits from the model (remove the {op.name})",
                     Recipe("", op_edit(ctx, op, "drop_op"))),
                 Fix("Or end with a sigmoid and use the loss on probabilities", ctx.recipes.probability_loss(loss))
                 if op.name != "sigmoid" else
                 Fix("Or keep the sigmoid and use the loss on probabilities", ctx.recipes.probability_loss(loss))]
        yield self.finding(message, layer or op.layer or None, fixes, location=(layer.source if layer else op.source))


# What sigmoid(x) can reach when x already went through the activation: a loss on logits applies that sigmoid.
REACHABLE = {
    "sigmoid": "[0.5, 0.73]", "softmax": "[0.5, 0.73]", "hardsigmoid": "[0.5, 0.73]",
    "tanh": "[0.27, 0.73]", "log_softmax": "(0, 0.5]",
}
