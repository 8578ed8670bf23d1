import math

from shapecheck.edits import Recipe
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import loss_ready, op_edit, op_site, output_bounds

REACH = 1e-6   # how close to 0 and 1 the output's range must come to count as reaching them


class ProbabilitiesCannotReachTargets(Rule):
    code = "SC158"
    name = "probabilities-cannot-reach-targets"
    category = "activation_vs_loss"
    summary = "The output's final ops confine the predicted probabilities to a narrower range than the 0/1 targets " \
              "(a sigmoid of a sigmoid)"
    supersedes = frozenset({"SC403", "SC404", "SC405"})

    def check(self, ctx):
        if not loss_ready(ctx) or ctx.loss.family != "binary" or ctx.loss.input_space != "probabilities":
            return
        bounds = output_bounds(ctx)
        if bounds is None:
            return
        low, high, op = bounds
        if low < 0 or high > 1 or (low <= REACH and high >= 1 - REACH):   # values outside [0, 1]: another rule's
            return
        stats = ctx.labels.stats
        targets = (stats.minimum, stats.maximum) if stats is not None else (0.0, 1.0)
        missed = [t for t in targets if not low <= t <= high]
        if not missed:
            return
        where, layer = op_site(ctx, op)
        floor = -math.log(1 - low) if missed[0] < low else -math.log(high)
        message = (f"`{ctx.loss.label}` reads probabilities for targets {targets[0]:g}..{targets[1]:g}, but {where} "
                   f"is applied to values that are already squashed: every prediction stays inside ({low:.3g}, "
                   f"{high:.3g}), so a target of {missed[0]:g} is never reached and its loss never goes below "
                   f"{floor:.2f}")
        fixes = [Fix(f"Apply one sigmoid only: remove this {op.name} (the output is already a probability)",
                     Recipe("", op_edit(ctx, op, "drop_op")))]
        yield self.finding(message, layer or op.layer or None, fixes, location=layer.source if layer else op.source)
