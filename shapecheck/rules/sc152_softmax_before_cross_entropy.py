from shapecheck.edits import Recipe
from shapecheck.findings import Fix, Subject
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_edit, op_site


class SoftmaxBeforeCrossEntropy(Rule):
    code = "SC152"
    name = "softmax-before-cross-entropy"
    category = "activation_vs_loss"
    summary = "The output already went through a softmax, and a cross-entropy on logits applies another one"
    subject = "op"   # the activation op before the loss
    supersedes = frozenset({"SC157", "SC403", "SC404", "SC405"})

    def check(self, ctx):
        loss = ctx.loss
        if loss is None or loss.family != "categorical" or loss.input_space != "logits":
            return
        op = final_activation(ctx)
        if op is None or op.name not in ("softmax", "sigmoid"):
            return
        where, layer = op_site(ctx, op)
        message = (f"{where} applies a {op.name} before `{loss.label}`, which expects raw logits: the loss works on "
                   "probabilities squashed into [0, 1], gradients vanish and training plateaus")
        fixes = [Fix(f"Return raw logits from the model (remove the {op.name}; apply it only at inference)",
                     Recipe("", op_edit(ctx, op, "drop_op")))]
        if op.name == "sigmoid":
            fixes.append(Fix("Or, for multi-label targets (several classes per sample), keep the sigmoid with a binary "
                             "cross-entropy on 0/1 vectors", ctx.recipes.binary_loss(from_logits=False)))
        elif ctx.trace.framework == "onnx" and loss.framework == "torch":   # the graph's softmax cannot be edited away
            fixes.append(Fix("Or keep the graph: take the log of its probabilities and use `NLLLoss`",
                             "loss = nn.NLLLoss()(torch.log(probs.clamp_min(1e-12)), labels)"))
        elif ctx.trace.framework == "torch":
            recipe = ctx.recipes.probability_loss(loss)
            fixes.append(Fix("Or make it a `log_softmax` and use the loss on log-probabilities",
                             recipe.applied_as(op_edit(ctx, op, "swap_op", "log_softmax") + recipe.edits)))
        else:
            fixes.append(Fix("Or keep it and use the loss on probabilities", ctx.recipes.probability_loss(loss)))
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source,
                           subject=Subject("op", name=str(op.index)))
