from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, ref


class LogitsIntoProbabilityLoss(Rule):
    code = "SC153"
    name = "logits-into-probability-loss"
    category = "activation_vs_loss"
    summary = "A loss on probabilities (BCELoss) gets an output no sigmoid or softmax bounded to [0, 1]"

    def check(self, ctx):
        if ctx.loss is None or ctx.loss.input_space != "probabilities" or ctx.output is None:
            return
        if final_activation(ctx) is not None and final_activation(ctx).name in ("sigmoid", "softmax"):
            return
        head = ctx.trace.head_layer()
        source = f" from {ref(ctx, head.name)}" if head else ""
        message = (f"`{ctx.loss.name}` needs probabilities in [0, 1], but the output{source} is not passed through a "
                   "sigmoid: raw logits fail or give a meaningless loss")
        fixes = [Fix("Train on logits with the numerically stable loss", ctx.recipes.loss("BCEWithLogitsLoss")),
                 Fix("Or end the model with a sigmoid", ctx.recipes.end_with("sigmoid"))]
        yield self.finding(message, head, fixes)
