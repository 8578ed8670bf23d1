from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_labels_match, values_text


class ContinuousTargetsForClassification(Rule):
    code = "SC116"
    name = "continuous-targets-for-classification"
    category = "label_range"
    summary = "Fractional labels are given to a class-index loss: scaled mask ids, or regression targets"
    subject = "loss"
    supersedes = frozenset({"SC100", "SC107", "SC404"})

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if loss is None or not loss.wants_class_indices or labels is None or labels.stats is None:
            return
        if labels.stats.integral or (ctx.output is not None and not index_labels_match(ctx)):
            return
        head = ctx.head
        stats = labels.stats
        values = values_text(stats)
        if _scaled_ids(stats):
            ids = sorted({round(v * 255) for v in stats.distinct})
            message = (f"`{loss.name}` labels take values {values}: class ids {ids} divided by 255 (a mask read as "
                       "an image: `ToTensor()`, `rescale=1/255`); as class indices every one truncates to 0")
            yield self.finding(message, head, [Fix("Read the mask without scaling, or undo it",
                                                   ctx.recipes.unscale_ids(255))])
        elif 0 <= stats.minimum and stats.maximum < 1:
            message = (f"`{loss.name}` labels take fractional values {values}, all below 1: as class indices "
                       "every one truncates to 0 (ids scaled like image pixels, or a mask resized with "
                       "interpolation)")
            yield self.finding(message, head, [
                Fix("Load masks without scaling and resize them with nearest-neighbour interpolation, so every "
                    "value stays a class id")])
        else:
            message = f"`{loss.name}` labels take fractional values {values}: regression targets, not class indices"
            fixes = [Fix("For a regression problem use one linear output and a regression loss",
                         ctx.recipes.loss("MSELoss"))]
            if head is not None:
                fixes.append(Fix("with a single output", ctx.recipes.replace_head(head, 1), joins=True))
                if len(ctx.labels.shape) == 1:   # [N] targets for the [N, 1] output, or MSE broadcasts them
                    fixes.append(Fix("and targets shaped like the output", ctx.recipes.labels_steps(("unsqueeze", 1)),
                                     joins=True))
            yield self.finding(message, head, fixes)


def _scaled_ids(stats) -> bool:
    """Every value is k/255 for a whole k, within [0, 1]: 8-bit ids rescaled like image pixels."""
    values = stats.distinct
    return bool(values) and 0 <= stats.minimum and stats.maximum <= 1 and \
        all(abs(v * 255 - round(v * 255)) < 1e-3 for v in values)
