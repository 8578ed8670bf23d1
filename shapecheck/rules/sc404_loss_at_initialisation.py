import math

from shapecheck.audit import expected_loss, is_nonnegative
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import measured


class LossAtInitialisation(Rule):
    code = "SC404"
    name = "loss-at-initialisation"
    category = "activation_vs_loss"
    summary = "The loss of the untrained model is a value no correct setup gives (measured): negative, not finite, " \
              "or raised on the real output"
    subject = "signal"
    supersedes = frozenset({"SC405"})

    def check(self, ctx):
        head, loss = measured(ctx), ctx.loss
        if head is None or loss is None:
            return
        stats = ctx.labels.stats if ctx.labels is not None and head.labels_real else None
        on = "valid stand-in labels" if not head.labels_real else "your labels" + (
            f" (values in [{stats.minimum:.3g}, {stats.maximum:.3g}])" if stats is not None else "")
        if head.loss_error:
            message = f"`{loss.label}` raised on the model's real output at initialisation, on {on}: " \
                      f"{head.loss_error}"
        elif head.loss_value is not None and not math.isfinite(head.loss_value):
            message = f"`{loss.label}` is {head.loss_value} at initialisation, on {on}"
            if head.values is not None and not math.isfinite(head.values.minimum + head.values.maximum):
                message += f": the model's output itself holds {_non_finite(head.values)}"
                yield self.finding(message, ctx.head, [Fix(
                    "Find the op that makes the output non-finite: a log of a value that can be 0 or negative, a "
                    "division by a value that can be 0, a square root of a negative, an exp that overflows")])
                return
        elif head.loss_value is not None and is_nonnegative(loss) and head.loss_value < -1e-6:
            message = (f"`{loss.label}` is {head.loss_value:.4g} at initialisation, on {on}: a cross-entropy or "
                       f"divergence is never negative on the inputs and targets it is defined for"
                       f"{_expected(loss, head)}")
        else:
            return
        yield self.finding(message, ctx.head, [Fix(
            "Check what the loss receives: log-probabilities for NLLLoss and KLDivLoss, probabilities in [0, 1] "
            "for a loss without logits; targets in [0, 1] for a binary cross-entropy, a probability distribution "
            "per row for KLDivLoss (the teacher's softmax, not its logits)")])


def _non_finite(values) -> str:
    return ", ".join(f"{name} {value}" for name, value in (("minimum", values.minimum), ("maximum", values.maximum))
                     if not math.isfinite(value))


def _expected(loss, head) -> str:
    classes = head.values.classes if head.values is not None else 0
    expected = expected_loss(loss, classes)
    if expected is None:
        return ""
    what = f"a {classes}-way" if loss.family == "categorical" else "a balanced binary"
    return f" (an untrained model on {what} task gives about {expected:.2f})"
