from shapecheck.findings import Fix
from shapecheck.oracle import broadcast_shape
from shapecheck.rules import Rule
from shapecheck.rules.common import loss_ready, output_phrase, same_batch
from shapecheck.rules.predicates import axis_order, moved_first, moved_last
from shapecheck.shapes import fmt


class TargetShapeMismatch(Rule):
    code = "SC102"
    name = "target-shape-mismatch"
    category = "labels_vs_loss"
    summary = "An element-wise loss gets labels whose shape differs from the output's (error, or a silent broadcast)"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC405"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.target != "same_shape" or not same_batch(ctx):
            return
        out, lab = ctx.output.shape, ctx.labels.shape
        if out == lab:
            return
        message = f"{output_phrase(ctx)}; labels have shape {fmt(lab)}"
        fixes = []
        if _differ_by_trailing_one(out, lab) and ctx.loss.lenient:
            return  # Keras squeezes or expands a trailing axis of 1 before the loss
        if _differ_by_trailing_one(out, lab):
            merged = broadcast_shape(out, lab)
            if ctx.loss.family == "regression" and merged is not None:
                message += f": they broadcast to {fmt(merged)} and every prediction is compared with every label"
            axis = len(out) - 1
            if len(lab) > len(out):
                fixes.append(Fix("Flatten the labels to the output's shape",
                                 ctx.recipes.labels_steps(("squeeze", axis + 1))))
                fixes.append(Fix("Or stop squeezing the output: keep the head's shape " + fmt(lab)))
            else:
                fixes.append(Fix("Add the missing axis to the labels", ctx.recipes.unsqueeze(axis)))
        elif axis_order(out, lab) is not None:
            order = axis_order(out, lab)
            layout = (" (the output is channels-last, the labels channels-first)" if order == moved_last(len(out))
                      else " (the output is channels-first, the labels channels-last)"
                      if order == moved_first(len(out)) else "")
            message += f": the same sizes in another axis order{layout}"
            fixes.append(Fix("Put the output's axes in the labels' order", ctx.recipes.permute_output(order)))
        elif ctx.labels.stats and ctx.labels.stats.channels_identical and len(lab) == len(out) and out[1] == 1:
            message += f": the labels' {lab[1]} channels are identical, a single-channel mask loaded as RGB"
            fixes.append(Fix("Load the mask with one channel (PIL: `Image.open(path).convert(\"L\")`)",
                             ctx.recipes.labels_steps(("first_channels", 1))))
        elif len(out) >= 3 and out[1] == 1 and lab == out[:1] + out[2:]:
            fixes.append(Fix("Add the channel axis to the labels", ctx.recipes.unsqueeze(1)))
        elif len(lab) == len(out) and out[1] == 1 and lab[1] > 1:
            fixes.append(Fix(f"Give the labels the output's shape {fmt(out)} (one value per sample), or make the head "
                             f"output {lab[1]} values"))
        else:
            fixes.append(Fix(f"Make the labels {fmt(out)}, the shape of the output"))
        yield self.finding(message, ctx.head, fixes)


def _differ_by_trailing_one(a: tuple, b: tuple) -> bool:
    return (a + (1,) == b) or (b + (1,) == a)


