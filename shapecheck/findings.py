"""Findings: plain data that rules produce and renderers print."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, get_args

from shapecheck.edits import Edit, Recipe
from shapecheck.trace import Location

Category = Literal["output_vs_loss", "labels_vs_loss", "activation_vs_loss", "label_range", "dtype",
                   "internal_layer", "input_shape", "batch_dim"]
Severity = Literal["error", "warning", "info"]
# What `--fix` may do with a fix (ruff's applicability): "safe" keeps what the user meant (a size made to agree with
# the labels' shape or with what the layer receives) and `--fix` applies it; "unsafe" changes behaviour (an
# activation dropped, a loss switched, a layer added) and needs `--unsafe-fixes`; "display" is shown, never
# applied, and `Fix.reason` says why (advice, a step in the training code, a size only known to be at least N).
Applicability = Literal["safe", "unsafe", "display"]
SubjectKind = Literal["loss", "forward", "batch", "op", "layer", "labels", "signal"]
Aspect = Literal["", "shape", "dtype", "values", "options"]   # options: the loss's own (class weights)
CATEGORIES: tuple[Category, ...] = get_args(Category)
SEVERITIES: tuple[Severity, ...] = get_args(Severity)
SUBJECT_KINDS: tuple[SubjectKind, ...] = get_args(SubjectKind)
ASPECTS: tuple[Aspect, ...] = get_args(Aspect)


@dataclass(frozen=True)
class Subject:
    """What a finding is about, so that the engine can keep one explanation per thing: a head's loss (and which
    aspect the loss rejects: shape, dtype or values; "" for the pairing as a whole), the forward pass that raised,
    the batch the probe saw mixed, an op or a layer of the forward pass, the labels, or the training signal the
    audit measured (a rule that supersedes the measuring rule explains it wherever it points)."""

    kind: SubjectKind
    aspect: Aspect = ""      # only a loss has aspects
    name: str = ""           # the head of a loss, the op's index or the layer's name

    def __post_init__(self):
        assert self.kind in SUBJECT_KINDS and self.aspect in ASPECTS, self

    def covers(self, other: Subject) -> bool:
        """The same thing; a whole covers each of its aspects (and an aspect the whole)."""
        if other.kind == "signal":   # what the audit measured on a head: explained by any finding naming a cause
            return True
        same_thing = (self.kind, self.name) == (other.kind, other.name)
        return same_thing and (self.aspect == other.aspect or "" in (self.aspect, other.aspect))


@dataclass(frozen=True)
class Fix:
    title: str
    code: Recipe | str = ""          # the recipe (what it shows and changes), or plain text for advice only
    joins: bool = False              # applies together with the fix before it ("Then match the labels ...")
    verified: bool | None = None     # None: not tried; True: re-checked clean (and trained) with it applied
    evidence: str = ""               # how it was verified, or why it failed
    certain: bool = True             # False: its size is a lower bound read from one batch ("at least 10 classes")
    applicability: Applicability = "display"   # set by the pipeline once it knows where the edit would go
    reason: str = ""                 # why it is display-only (or unsafe), for the user who wonders
    placed: str = ""                 # where the edit goes when not at the layer's own line (the call that chose it)

    @property
    def recipe(self) -> Recipe:
        return self.code if isinstance(self.code, Recipe) else Recipe(self.code)

    @property
    def applies(self) -> bool:
        """`--fix` writes it (verified and safe); `unsafe_applies` with `--unsafe-fixes`."""
        return bool(self.verified) and self.applicability == "safe"

    @property
    def unsafe_applies(self) -> bool:
        return bool(self.verified) and self.applicability == "unsafe"

    @property
    def edits(self) -> tuple[Edit, ...]:
        """What the recipe changes, as data; () when it is advice only."""
        return self.recipe.edits

    def to_json(self) -> dict:
        return {"title": self.title, "code": self.recipe.text, "verified": bool(self.verified),
                "evidence": self.evidence or None, "applicability": self.applicability,
                "reason": self.reason or None, "placed": self.placed or None,
                "edits": [edit.to_json() for edit in self.edits]}

    def __str__(self) -> str:
        return f"{self.title}: `{self.recipe.text}`" if self.recipe.text else self.title


@dataclass
class Finding:
    rule: str
    name: str
    severity: Severity
    category: Category
    message: str
    layer: str | None = None
    location: Location | None = None
    fixes: list[Fix] = field(default_factory=list)
    subject: Subject | None = None   # set by the rule, else by the engine from the rule's declared subject
    head: str = ""                   # the output it is about, when a check covers several
    explains: tuple[str, ...] = ()   # the rules whose findings this one superseded (set by the engine)

    def to_json(self) -> dict:
        return {
            "rule": self.rule, "name": self.name, "severity": self.severity, "category": self.category,
            "head": self.head or None,
            "layer": self.layer, "message": self.message,
            "location": self.location.to_json() if self.location else None,
            "fixes": [fix.to_json() for fix in self.fixes],
        }
