from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_labels_match, loss_ready, same_batch
from shapecheck.shapes import fmt


class ClassIdsForOneHotLoss(Rule):
    code = "SC109"
    name = "class-ids-for-one-hot-loss"
    category = "labels_vs_loss"
    summary = "A loss that wants one-hot labels (categorical_crossentropy) gets class ids"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC101"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.target != "one_hot" or not same_batch(ctx) or ctx.labels.dtype == "str":
            return
        if ctx.output.shape == ctx.labels.shape or not index_labels_match(ctx):
            return
        classes = ctx.output.shape[ctx.loss.class_axis]
        if classes == 1:
            return   # one output column: labels without it are its values with the axis squeezed, not class ids
        message = (f"`{ctx.loss.name}` wants one-hot labels {fmt(ctx.output.shape)}, but the labels {fmt(ctx.labels.shape)} "
                   f"are class ids for the {classes} outputs")
        fixes = [Fix("Use the class-id form of the loss", ctx.recipes.class_index_loss(ctx.loss)),
                 Fix("Or one-hot encode the labels", ctx.recipes.one_hot("labels", classes))]
        yield self.finding(message, ctx.head, fixes)
