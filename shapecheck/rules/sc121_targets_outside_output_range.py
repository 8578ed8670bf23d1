from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import final_activation, loss_ready, op_site

# the values each squashing activation can produce
RANGES = {"sigmoid": (0.0, 1.0), "hardsigmoid": (0.0, 1.0), "softmax": (0.0, 1.0), "tanh": (-1.0, 1.0)}


class TargetsOutsideOutputRange(Rule):
    code = "SC121"
    name = "targets-outside-output-range"
    category = "label_range"
    summary = "Regression targets lie outside the range the output activation can produce (sigmoid, tanh)"

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "regression" or ctx.labels.stats is None:
            return
        op = final_activation(ctx)
        if op is None or op.name not in RANGES:
            return
        low, high = RANGES[op.name]
        stats = ctx.labels.stats
        if low <= stats.minimum and stats.maximum <= high:
            return
        where, layer = op_site(ctx, op)
        message = (f"`{ctx.loss.name}` targets range over {stats.minimum:g}..{stats.maximum:g}, but {where} applies a {op.name}: "
                   f"every prediction stays inside ({low:g}, {high:g}), so the error cannot shrink and the gradients "
                   "vanish as the outputs saturate")
        fixes = [Fix(f"Predict the raw value: remove the {op.name} from the output"),
                 Fix(f"Or scale the targets into ({low:g}, {high:g}) and invert the scaling at inference",
                     "labels = (labels - labels.min()) / (labels.max() - labels.min())" if low == 0 else
                     "labels = 2 * (labels - labels.min()) / (labels.max() - labels.min()) - 1")]
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source)
