from shapecheck.audit import FIT_LEARNING_RATE, FIT_STEPS, FIT_STUCK
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref


class CannotFitOneBatch(Rule):
    code = "SC405"
    name = "cannot-fit-one-batch"
    category = "internal_layer"
    severity = "warning"   # a measured symptom: the cause is somewhere between the input and the loss
    summary = "A small model cannot fit a handful of samples (measured), or has no trainable parameter at all"
    subject = "signal"

    def check(self, ctx):
        audit = ctx.trace.audit
        fit = audit.fit if audit is not None else None
        if fit is None:
            return
        if fit.trainable == 0:
            yield _nothing_trainable(self, ctx.trace.framework)
            return
        # a slow learner (a deep, thin network under LayerDrop) may take all the steps; a stuck one hardly moves
        if fit.steps < FIT_STEPS or fit.initial <= 1e-3 or fit.final <= FIT_STUCK * fit.initial:
            return
        message = (f"the model cannot fit {fit.samples} samples: {fit.steps} seeded Adam steps (lr "
                   f"{FIT_LEARNING_RATE:g}) took the loss from {fit.initial:.4g} only to {fit.final:.4g}, where a "
                   "correct model memorises them")
        if fit.weakest is not None:
            layer, ratio = fit.weakest
            message += f"; the gradient reaching {ref(ctx, layer)} is {ratio:.1e} of the median layer's"
        yield self.finding(message, fit.weakest[0] if fit.weakest else None, [Fix(
            "Look for what limits the output between the input and the loss: a bottleneck of width 1, a bounded "
            "activation before a loss on unbounded targets, an input scaled so every unit saturates")])


def _nothing_trainable(rule, framework: str):
    if framework == "keras":
        return rule.finding(
            "no weight is trainable (`model.trainable_weights` is empty: `trainable = False` on the model, or on a "
            "model nested in it, freezes every layer inside whatever their own flags say): `fit` trains nothing",
            None, [Fix("Leave the model trainable and freeze layer by layer, then compile again: "
                       "`for layer in model.layers[:k]: layer.trainable = False`")], severity="error")
    return rule.finding("no parameter is trainable (every `requires_grad` is False): the step trains nothing",
                        None, [Fix("Unfreeze the layers to train after freezing the rest: "
                                   "`for p in model.<head>.parameters(): p.requires_grad = True` (setting "
                                   "`requires_grad` on a module object does nothing)")], severity="error")
