import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import loss_ready, op_site, output_bounds


class TargetsOutsideOutputRange(Rule):
    code = "SC121"
    name = "targets-outside-output-range"
    category = "label_range"
    summary = "Regression targets lie outside the range the model's output can take (sigmoid, tanh, exp(-x))"
    supersedes = frozenset({"SC405"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "regression" or ctx.labels.stats is None:
            return
        bounds = output_bounds(ctx)
        if bounds is None:
            return
        low, high, op = bounds
        stats = ctx.labels.stats
        if low <= stats.minimum and stats.maximum <= high:
            return
        where, layer = op_site(ctx, op)
        message = (f"`{ctx.loss.name}` targets range over {stats.minimum:g}..{stats.maximum:g}, but {where} applies "
                   f"{_article(op.name)} {op.name}: every prediction stays inside {_interval(low, high)}, so the error "
                   "cannot shrink" + (" and the gradients vanish as the outputs saturate" if op.name != "exp" else ""))
        fixes = [Fix(f"Let the output reach the targets: remove the {op.name}")]
        if math.isfinite(low) and math.isfinite(high):
            scale = (stats.maximum - stats.minimum) / (high - low)
            fixes[0] = Fix(f"Let the output reach the targets: remove the {op.name}, or map its {_interval(low, high)} "
                           f"onto {stats.minimum:g}..{stats.maximum:g}",
                           f"out = {stats.minimum - low * scale:g} + {scale:g} * out")
            fixes.append(Fix(f"Or scale the targets into {_interval(low, high)} and invert the scaling at inference",
                             "labels = (labels - labels.min()) / (labels.max() - labels.min())" if low == 0 else
                             "labels = 2 * (labels - labels.min()) / (labels.max() - labels.min()) - 1"))
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source)


def _interval(low: float, high: float) -> str:
    return f"({low:g}, {high:g})" if math.isfinite(high) else f"[{low:g}, inf)"


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"
