"""The rule catalogue. Each rule is a `Rule` subclass in its own module; subclasses register themselves.

Third-party rule packs register through the `shapecheck.rules` entry-point group (a module to import).
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from shapecheck.findings import (
    ASPECTS,
    CATEGORIES,
    SEVERITIES,
    SUBJECT_KINDS,
    Aspect,
    Category,
    Finding,
    Fix,
    Severity,
    Subject,
    SubjectKind,
)
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.oracle import LossCheck
from shapecheck.recipes import Recipes, ReExport
from shapecheck.trace import Layer, Location, Trace

REGISTRY: dict[str, type[Rule]] = {}
PRECEDENCE: dict[str, frozenset[str]] = {}   # code -> every code it supersedes, transitively


@dataclass
class Context:
    """What a rule may look at: the trace, the declared loss and the labels (either may be missing), and the facts
    several rules need, computed once."""

    trace: Trace
    loss: LossContract | None
    labels: LabelInfo | None
    recipes: Recipes | ReExport   # an exported graph's recipes speak of the source model (`ReExport`)
    loss_check: LossCheck | None = None   # the framework's own verdict on the output, the loss and the labels

    @property
    def output(self):
        return self.trace.output

    @functools.cached_property
    def head(self) -> Layer | None:
        """The last parametrised layer that produced the output (the classifier head)."""
        return self.trace.head_layer()

    def loss_subject(self, aspect: Aspect = "") -> Subject:
        """The loss of the head being checked, or one aspect of it (shape, dtype, values)."""
        return Subject("loss", aspect, self.trace.output_path or "")


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[Category]
    severity: ClassVar[Severity] = "error"
    summary: ClassVar[str]
    # What its findings are about unless a finding names its own subject (`Subject`): "loss" (with `aspect`, the
    # part of the loss it explains: "shape", "dtype", "values", or "" for the whole), "forward" (the forward pass
    # raised), "batch" (the probe saw samples mix), "layer" (the finding's layer), "op", "labels".
    subject: ClassVar[SubjectKind] = "layer"
    aspect: ClassVar[Aspect] = ""
    # When the forward pass raised, the findings explain that failure (the forward subject) whatever `subject` says.
    explains_failure: ClassVar[bool] = False
    # The less specific rules whose findings on the same subject this rule's findings replace. The catch-alls
    # (SC100 the loss, SC901 the forward pass, SC305 the batch probe) are superseded by every rule that explains
    # what they report.
    supersedes: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        assert cls.category in CATEGORIES and cls.severity in SEVERITIES, cls
        assert cls.subject in SUBJECT_KINDS and cls.aspect in ASPECTS, cls
        if cls.code in REGISTRY and REGISTRY[cls.code] is not cls:
            raise ValueError(f"rule code {cls.code} is used twice ({REGISTRY[cls.code].__name__}, {cls.__name__})")
        REGISTRY[cls.code] = cls

    def check(self, ctx: Context) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(self, message: str, layer: Layer | str | None = None, fixes: list[Fix] | tuple = (),
                location: Location | None = None, severity: Severity | None = None,
                subject: Subject | None = None) -> Finding:
        if isinstance(layer, Layer):
            location = location or layer.source
            layer = layer.name
        return Finding(self.code, self.name, severity or self.severity, self.category, message, layer or None,
                       location, list(fixes), subject)

    @classmethod
    def subject_of(cls, finding: Finding, ctx: Context) -> Subject:
        """The finding's own subject, else the one this rule declares."""
        if finding.subject is not None:
            return finding.subject
        if cls.explains_failure and ctx.trace.failure is not None:
            return Subject("forward")
        if cls.subject == "loss":
            return ctx.loss_subject(cls.aspect)
        if cls.subject in ("layer", "op"):
            return Subject(cls.subject, name=finding.layer or "")
        return Subject(cls.subject)


def check_precedence(rules: dict[str, type[Rule]]) -> dict[str, frozenset[str]]:
    """Every code a rule supersedes, directly or through another rule; raises on unknown codes and cycles."""
    for code, rule in rules.items():
        unknown = sorted(rule.supersedes - rules.keys())
        if unknown:
            raise ValueError(f"{code} supersedes unknown rule codes: {', '.join(unknown)}")
    closure: dict[str, frozenset[str]] = {}

    def superseded(code: str, path: tuple[str, ...]) -> frozenset[str]:
        if code in path:
            raise ValueError(f"rule precedence has a cycle: {' > '.join((*path[path.index(code):], code))}")
        if code not in closure:
            direct = rules[code].supersedes
            closure[code] = direct.union(*(superseded(c, (*path, code)) for c in direct))
        return closure[code]

    for code in rules:
        superseded(code, ())
    return closure


def load_rules() -> dict[str, type[Rule]]:
    """Import every built-in rule module and every registered rule pack, once."""
    if not REGISTRY:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        from importlib.metadata import entry_points
        for entry in entry_points(group="shapecheck.rules"):
            entry.load()
        PRECEDENCE.update(check_precedence(REGISTRY))
    return dict(sorted(REGISTRY.items()))
