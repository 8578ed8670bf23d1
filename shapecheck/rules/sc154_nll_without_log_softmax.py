from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, op_edit, op_site, ref


class NllWithoutLogSoftmax(Rule):
    code = "SC154"
    name = "nll-without-log-softmax"
    category = "activation_vs_loss"
    summary = "NLLLoss or KLDivLoss gets an output that is not log-probabilities (softmax output gives a negative loss)"
    supersedes = frozenset({"SC403", "SC404", "SC405"})

    def check(self, ctx):
        if ctx.loss is None or ctx.loss.input_space != "log_probabilities" or ctx.output is None:
            return
        op = final_activation(ctx)
        if op is not None and op.name == "log_softmax":
            return
        if op is not None and op.name == "softmax":
            where, layer = op_site(ctx, op)
            effect = ("-p[target], negative and bounded in [-1, 0]" if ctx.loss.wants_class_indices else
                      "sum(q * (log q - p)) against the target distribution q, which goes negative")   # KLDivLoss
            message = (f"{where} outputs probabilities, but `{ctx.loss.name}` expects log-probabilities: the loss is "
                       f"{effect}")
            location = layer.source if layer else op.source
        else:
            layer = ctx.head
            source = f" from {ref(ctx, layer.name)}" if layer else ""
            produced = f"a {op.name} output" if op is not None else "raw logits"
            message = f"`{ctx.loss.name}` expects log-probabilities, but the output{source} is {produced} (no log_softmax)"
            location = layer.source if layer else None
        if op is not None and op.name == "softmax":   # the softmax becomes a log_softmax, or goes
            ending = ctx.recipes.end_with("log_softmax")
            fixes = [Fix("End the model with log_softmax over the classes",
                         ending.applied_as(op_edit(ctx, op, "swap_op", "log_softmax")))]
            if ctx.loss.wants_class_indices:
                recipe = ctx.recipes.loss("CrossEntropyLoss")
                fixes.append(Fix("Or return raw logits and use",
                                 recipe.applied_as(op_edit(ctx, op, "drop_op") + recipe.edits)))
        else:
            fixes = [Fix("End the model with log_softmax over the classes", ctx.recipes.end_with("log_softmax"))]
            if ctx.loss.wants_class_indices:
                fixes.append(Fix("Or return raw logits and use", ctx.recipes.loss("CrossEntropyLoss")))
        yield self.finding(message, layer, fixes, location=location)
