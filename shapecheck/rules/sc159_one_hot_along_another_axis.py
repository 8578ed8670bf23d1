from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_axis, final_activation, loss_ready
from shapecheck.shapes import fmt


class OneHotAlongAnotherAxis(Rule):
    code = "SC159"
    name = "one-hot-along-another-axis"
    category = "activation_vs_loss"
    summary = "The labels are one-hot along another axis than the loss's class axis: the output keeps its classes " \
              "elsewhere (channels-first under Keras), and the softmax and the loss run over the wrong axis"
    subject = "loss"
    aspect = "values"
    supersedes = frozenset({"SC114", "SC115", "SC403", "SC404", "SC405"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "categorical" or ctx.loss.wants_class_indices or \
                ctx.labels.stats is None:
            return
        shape, rank = ctx.labels.shape, len(ctx.labels.shape)
        if shape != ctx.output.shape or rank < 3:
            return
        axis = class_axis(ctx)
        other = 1 if axis == rank - 1 else rank - 1
        read, along = ctx.labels.stats.rows(ctx.loss.class_axis), ctx.labels.stats.rows(1 if other == 1 else -1)
        if read is None or along is None or not (read.zero_rows or read.multi_hot_rows) or \
                along.zero_rows or along.multi_hot_rows:
            return
        softmax = final_activation(ctx)
        normalised = "the softmax and " if softmax is not None and softmax.name == "softmax" else ""
        message = (f"`{ctx.loss.label}` reads the classes along axis {axis} of {fmt(shape)}, but the labels are "
                   f"one-hot along axis {other}: each of the {along.rows:,} rows along it holds exactly one 1, while "
                   f"{read.zero_rows + read.multi_hot_rows:,} of the {read.rows:,} rows along axis {axis} do not. The "
                   f"{shape[other]} classes are on axis {other}, so {normalised}the loss run over the wrong axis")
        yield self.finding(message, ctx.head, [_fix(ctx, rank, other)])


def _fix(ctx, rank: int, other: int) -> Fix:
    if ctx.trace.framework == "keras":   # channels-first classes: move them last, where Keras reads them
        dims = (*range(2, rank), 1)
        return Fix("Keep the classes on the last axis: drop the move to channels-first, or permute before the softmax, "
                   "with labels shaped the same way", f"x = layers.Permute({dims})(x)")
    return Fix(f"Put the classes on axis 1 in both the output and the labels (they are on axis {other})",
               ctx.recipes.move_class_axis(rank))
