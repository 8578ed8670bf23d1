from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import BOUNDED, final_activation, ref


class LogitsIntoProbabilityLoss(Rule):
    code = "SC153"
    name = "logits-into-probability-loss"
    category = "activation_vs_loss"
    summary = "A loss on probabilities (BCELoss, from_logits=False) gets an output no sigmoid or softmax bounded"
    supersedes = frozenset({"SC403", "SC404", "SC405"})

    def check(self, ctx):
        loss = ctx.loss
        if loss is None or loss.input_space != "probabilities" or ctx.output is None:
            return
        op = final_activation(ctx)
        if op is not None and op.name in BOUNDED:
            return
        head = ctx.head
        source = f" from {ref(ctx, head.name)}" if head else ""
        squash = "sigmoid" if loss.family == "binary" else "softmax"
        message = (f"`{loss.label}` needs probabilities in [0, 1], but the output{source} is not passed through a "
                   f"{squash}: raw logits fail or give a meaningless loss")
        if loss.framework == "torch" or loss.from_logits is not None:
            fixes = [Fix("Train on logits with the numerically stable form of the loss", ctx.recipes.logits_loss(loss)),
                     Fix(f"Or end the model with a {squash}", ctx.recipes.end_with(squash))]
        else:   # Keras' KLDivergence has no logits form
            fixes = [Fix(f"End the model with a {squash}", ctx.recipes.end_with(squash))]
        yield self.finding(message, head, fixes)
