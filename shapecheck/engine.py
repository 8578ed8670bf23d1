"""Run the rule catalogue over a trace. Imports no framework: it sees only the neutral trace data."""

from __future__ import annotations

from dataclasses import dataclass, field

from shapecheck.findings import Finding
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.recipes import Recipes
from shapecheck.rules import Context, load_rules
from shapecheck.trace import Trace

FALLBACK_RULE = "SC901"   # reports a failed forward pass that no specific rule explained


@dataclass
class Result:
    target: str
    trace: Trace | None = None
    loss: LossContract | None = None
    labels: LabelInfo | None = None
    findings: list[Finding] = field(default_factory=list)
    error: dict | None = None            # {"kind", "message"} when the target could not be checked

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)


def check(trace: Trace, loss: LossContract | None, labels: LabelInfo | None, recipes: Recipes,
          select: set[str] | None = None, ignore: set[str] = frozenset()) -> list[Finding]:
    ctx = Context(trace, loss, labels, recipes)
    rules = load_rules()
    chosen = [finding for code, rule in rules.items() if code != FALLBACK_RULE and _selected(code, select, ignore)
              for finding in rule().check(ctx)]
    if trace.failure is not None and not any(rules[f.rule].explains_failure for f in chosen):
        chosen += [f for f in rules[FALLBACK_RULE]().check(ctx) if _selected(f.rule, select, ignore)]
    severity_order = {"error": 0, "warning": 1, "info": 2}
    return sorted(chosen, key=lambda f: (severity_order[f.severity], f.rule))


def _selected(code: str, select: set[str] | None, ignore: set[str]) -> bool:
    def matches(prefixes):
        return any(code.startswith(p) for p in prefixes)
    return (select is None or matches(select)) and not matches(ignore)
