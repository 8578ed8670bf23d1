"""Run the rule catalogue over a trace. Imports no framework: it sees only the neutral trace data."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from shapecheck.findings import Finding, Subject
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.oracle import LossCheck
from shapecheck.recipes import Recipes, ReExport
from shapecheck.rules import PRECEDENCE, Context, load_rules
from shapecheck.trace import Trace


@dataclass
class HeadCheck:
    """One output of the model checked against its own loss and labels."""

    output: str | None                   # the trace's output path (None: the model's main output)
    name: str = ""                       # how messages name it; "" when it is the only head
    loss: LossContract | None = None
    labels: LabelInfo | None = None
    loss_check: LossCheck | None = None  # what the framework's own loss said about the output and labels


@dataclass
class Result:
    target: str
    trace: Trace | None = None
    heads: list[HeadCheck] = field(default_factory=list)   # the first is the model's main output
    findings: list[Finding] = field(default_factory=list)
    error: dict | None = None            # {"kind", "message"} when the target could not be checked
    suppressed: int = 0                  # findings left out by `# shapecheck: ignore` comments
    patches: dict = field(default_factory=dict)   # finding index -> its verified recipe's source patches (when asked)

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" for f in self.findings)

    @property
    def loss(self) -> LossContract | None:
        return self.heads[0].loss if self.heads else None

    @property
    def labels(self) -> LabelInfo | None:
        return self.heads[0].labels if self.heads else None

    @property
    def loss_check(self) -> LossCheck | None:
        return self.heads[0].loss_check if self.heads else None


def check(trace: Trace, loss: LossContract | None, labels: LabelInfo | None, recipes: Recipes | ReExport,
          select: Collection[str] | None = None, ignore: Collection[str] = frozenset(),
          loss_check: LossCheck | None = None) -> list[Finding]:
    """Every selected rule's findings, keeping per subject the most specific explanation. Each rule reports
    whenever its own condition holds; which one is shown is decided here, from what the rules declare they
    supersede, never by one rule looking at another."""
    ctx = Context(trace, loss, labels, recipes, loss_check)
    rules = {code: rule for code, rule in load_rules().items() if _selected(code, select, ignore)}
    found: list[tuple[Finding, Subject]] = []
    for rule in rules.values():
        for finding in rule().check(ctx):
            finding.subject = rule.subject_of(finding, ctx)
            found.append((finding, finding.subject))
    kept = []
    for finding, subject in found:
        by = _superseding(finding, subject, found)
        if by:
            for other in by:
                other.explains = tuple(sorted({*other.explains, finding.rule}))
        else:
            kept.append(finding)
    return sorted(kept, key=lambda f: (SEVERITY_ORDER[f.severity], f.rule))


SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


def _superseding(finding: Finding, subject: Subject, found: list[tuple[Finding, Subject]]) -> list[Finding]:
    """The findings on the same subject, at least as severe, from a rule that supersedes this one's."""
    return [other for other, other_subject in found
            if finding.rule in PRECEDENCE[other.rule] and other_subject.covers(subject)
            and SEVERITY_ORDER[other.severity] <= SEVERITY_ORDER[finding.severity]]


def _selected(code: str, select: Collection[str] | None, ignore: Collection[str]) -> bool:
    def matches(prefixes):
        return any(code.startswith(p) for p in prefixes)
    return (select is None or matches(select)) and not matches(ignore)
