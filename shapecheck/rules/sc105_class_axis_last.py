from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape, loss_ready, same_batch
from shapecheck.shapes import fmt


class ClassAxisLast(Rule):
    code = "SC105"
    name = "class-axis-last"
    category = "output_vs_loss"
    summary = "A sequence or dense output has its class axis last where the loss reads classes from axis 1"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        if not loss_ready(ctx) or not ctx.loss.wants_class_indices or not same_batch(ctx):
            return
        out, lab = ctx.output.shape, ctx.labels.shape
        if len(out) < 3 or ctx.loss.class_axis != 1 or lab != out[:-1] or lab == index_target_shape(ctx):
            return
        moved = (out[0], out[-1], *out[1:-1])
        message = (f"`{ctx.loss.name}` reads classes from axis 1, but the output {fmt(out)} has its {out[-1]} classes "
                   f"last; labels {fmt(lab)} expect logits {fmt(moved)}")
        fixes = [Fix("Move the class axis to position 1", ctx.recipes.move_class_axis(len(out))),
                 Fix("Or flatten both", f"loss = criterion(output.reshape(-1, {out[-1]}), labels.reshape(-1))")]
        yield self.finding(message, ctx.head, fixes)
