from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_count, final_activation, loss_ready, new_head, output_phrase


class SingleLogitCrossEntropy(Rule):
    code = "SC106"
    name = "single-logit-cross-entropy"
    category = "output_vs_loss"
    summary = "A softmax cross-entropy over one output: the loss is always 0 and nothing is learnt"
    subject = "loss"   # the whole pairing: no labels can train a softmax over one output
    supersedes = frozenset({"SC114"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "categorical" or class_count(ctx) != 1:
            return
        head = ctx.head
        message = f"{output_phrase(ctx)}: a softmax over 1 class is always 1.0, so the loss is always 0"
        activation = final_activation(ctx)
        squashed = activation is not None and activation.name == "sigmoid"
        fixes = [Fix("For a binary problem keep one output and use a binary cross-entropy",
                     ctx.recipes.binary_loss(from_logits=not squashed))]
        if head is not None:
            fixes.append(new_head(ctx, head, 2, "Or output one logit per class"))
        yield self.finding(message, head, fixes)
