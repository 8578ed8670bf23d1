"""Run the rule catalogue over a trace. Imports no framework: it sees only the neutral trace data."""

from __future__ import annotations

from dataclasses import dataclass, field

from shapecheck.findings import Finding
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.oracle import LossCheck
from shapecheck.recipes import Recipes
from shapecheck.rules import Context, load_rules
from shapecheck.trace import Trace

# The catch-alls: each reports ground truth (the forward pass raised, the loss rejected the output and labels, the
# probe saw samples mix) that no specific rule explained; a rule's `explains` names what it takes over.
FORWARD_FALLBACK, LOSS_FALLBACK, BATCH_FALLBACK = "SC901", "SC100", "SC305"

# When both report, the more specific explanation is shown: a rule and the ones it replaces.
SUPERSEDES = {
    "SC101": {"SC102"},           # the head's width, not the labels' shape
    "SC104": {"SC102"},           # a smaller map, not a different target
    "SC212": {"SC102"},           # axes a layer never reduced
    "SC117": {"SC102", "SC107"},  # class ids for a regression loss: the loss is wrong, not the labels
    "SC301": {"SC302"},           # the reshape that folds the batch
    "SC306": {"SC302"},           # the batch size written into a reshape
    "SC216": {"SC302"},           # a graph exported with its batch fixed
    "SC307": {"SC302"},           # the squeeze that drops a batch of one
}


@dataclass
class Result:
    target: str
    trace: Trace | None = None
    loss: LossContract | None = None
    labels: LabelInfo | None = None
    findings: list[Finding] = field(default_factory=list)
    error: dict | None = None            # {"kind", "message"} when the target could not be checked
    loss_check: LossCheck | None = None  # what the framework's own loss said about the output and labels

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)


def check(trace: Trace, loss: LossContract | None, labels: LabelInfo | None, recipes: Recipes,
          select: set[str] | None = None, ignore: set[str] = frozenset(),
          loss_check: LossCheck | None = None) -> list[Finding]:
    """Every selected rule's findings. The ground truth (the forward pass raised, the loss rejected the output)
    always yields a finding: the catch-all's when no specific rule explained it. Which rule explains what is
    declared by the rules and decided here, never by one rule looking at another."""
    ctx = Context(trace, loss, labels, recipes, loss_check)
    rules = load_rules()
    fallbacks = {FORWARD_FALLBACK: "forward", BATCH_FALLBACK: "batch",
                 LOSS_FALLBACK: loss_check.explanation_key if loss_check is not None else ""}
    chosen = [finding for code, rule in rules.items() if code not in fallbacks and _selected(code, select, ignore)
              for finding in rule().check(ctx)]
    chosen = _most_specific(chosen)
    explained = {key for finding in chosen if finding.severity == "error" for key in rules[finding.rule].explains}
    for code, key in fallbacks.items():
        if key not in explained:
            chosen += [f for f in rules[code]().check(ctx) if _selected(f.rule, select, ignore)]
    severity_order = {"error": 0, "warning": 1, "info": 2}
    return sorted(chosen, key=lambda f: (severity_order[f.severity], f.rule))


def _most_specific(findings: list[Finding]) -> list[Finding]:
    reported = {finding.rule for finding in findings}
    replaced = {code for rule in reported for code in SUPERSEDES.get(rule, ())}
    return [finding for finding in findings if finding.rule not in replaced]


def _selected(code: str, select: set[str] | None, ignore: set[str]) -> bool:
    def matches(prefixes):
        return any(code.startswith(p) for p in prefixes)
    return (select is None or matches(select)) and not matches(ignore)
