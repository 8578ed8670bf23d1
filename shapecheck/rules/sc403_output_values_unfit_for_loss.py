import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import measured


class OutputValuesUnfitForLoss(Rule):
    code = "SC403"
    name = "output-values-unfit-for-loss"
    category = "activation_vs_loss"
    summary = "The values the loss receives are not the kind it reads (measured): probabilities into a logits loss, " \
              "scores into a log-probability loss, values outside [0, 1] into a probability loss"
    subject = "signal"
    supersedes = frozenset({"SC404", "SC405"})

    def check(self, ctx):
        head, loss = measured(ctx), ctx.loss
        if head is None or head.values is None or loss is None:
            return
        found = _mismatch(loss, head.values)
        if found is not None:
            message, fix = found
            yield self.finding(f"`{loss.label}` {message} (measured at initialisation)", ctx.head, [Fix(fix)])


def _mismatch(loss, values) -> tuple[str, str] | None:
    """What is wrong with these values for this loss, and the fix; None when they are what it reads."""
    span = f"values in [{values.minimum:.3g}, {values.maximum:.3g}]"
    rows = f"every row of {values.classes} values sums to 1"
    if loss.input_space == "logits" and values.are_probabilities:
        floor = math.log(1 + (values.classes - 1) / math.e) if loss.family == "categorical" else None
        bound = f"it cannot go below {floor:.2f} and " if floor is not None else ""
        return (f"reads raw scores (logits), but the output is probabilities ({span}, {rows}): the loss normalises "
                f"them again, so {bound}its gradients shrink",
                "Return the raw scores (remove the final normalisation: a softmax, or exp divided by its sum) and "
                "keep the loss")
    if loss.input_space == "logits" and values.clamped_at_zero:
        effect = "every predicted probability is at least 0.5, so the negative class is never predicted" \
            if loss.family == "binary" else "no class score can go below 0, and the clamped ones get no gradient"
        return (f"reads raw scores (logits), but {values.zeros:.0%} of the output's values are exactly 0 and none is "
                f"below ({span}): the output is clamped at 0 (a ReLU), so {effect}",
                "Return the last layer's raw scores: remove the final ReLU (or clamp) before the loss")
    if loss.input_space == "log_probabilities" and values.classes > 1:
        if values.are_probabilities:
            effect = "-p[target], negative and bounded in [-1, 0]" if loss.wants_class_indices else \
                "sum(q * (log q - p)) against the target distribution q, which goes negative"
            return (f"reads log-probabilities, but the output is probabilities ({span}, {rows}): the loss is "
                    f"{effect}", "End the model with log_softmax instead of softmax")
        if not values.are_log_probabilities and values.exp_row_sums is not None:
            low, high = values.exp_row_sums
            return (f"reads log-probabilities, but the output is not ({span}; exp of a row sums to {low:.3g}.."
                    f"{high:.3g}, not 1): on raw scores the loss falls without bound by growing one score",
                    "End the model with log_softmax over the classes, or train the raw scores with a cross-entropy "
                    "that takes logits")
    if loss.input_space == "probabilities" and (values.minimum < 0 or values.maximum > 1):
        effect = "PyTorch raises on them" if loss.framework == "torch" else \
            "Keras clips them to [1e-7, 1 - 1e-7], where their gradient is zero"
        return (f"reads probabilities, but the output holds {span}: {effect}",
                "End the model with a sigmoid (softmax for one-hot classes), or keep the raw scores and use the "
                "loss's from-logits form")
    return None
