"""Findings: plain data that rules produce and renderers print."""

from __future__ import annotations

from dataclasses import dataclass, field

from shapecheck.edits import Edit
from shapecheck.trace import Location

CATEGORIES = (
    "output_vs_loss", "labels_vs_loss", "activation_vs_loss", "label_range", "dtype", "internal_layer",
    "input_shape", "batch_dim",
)
SEVERITIES = ("error", "warning", "info")


class Snippet(str):
    """Recipe code that knows its edit: what `Fix` shows and what verification applies come from one call."""

    edits: tuple[Edit, ...] = ()

    def __new__(cls, text: str, edits: tuple[Edit, ...] = ()):
        snippet = super().__new__(cls, text)
        snippet.edits = edits
        return snippet


@dataclass(frozen=True)
class Fix:
    title: str
    code: str = ""
    edits: tuple[Edit, ...] = ()     # what the recipe changes, as data; () when it is advice only
    joins: bool = False              # applies together with the fix before it ("Then match the labels ...")
    verified: bool | None = None     # None: not tried; True: re-checked clean (and trained) with it applied
    evidence: str = ""               # how it was verified, or why it failed

    def __post_init__(self):
        if not self.edits and isinstance(self.code, Snippet):
            object.__setattr__(self, "edits", self.code.edits)

    def to_json(self) -> dict:
        return {"title": self.title, "code": str(self.code), "verified": bool(self.verified),
                "evidence": self.evidence or None, "edits": [edit.to_json() for edit in self.edits]}

    def __str__(self) -> str:
        return f"{self.title}: `{self.code}`" if self.code else self.title


@dataclass
class Finding:
    rule: str
    name: str
    severity: str
    category: str
    message: str
    layer: str | None = None
    location: Location | None = None
    fixes: list[Fix] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "rule": self.rule, "name": self.name, "severity": self.severity, "category": self.category,
            "layer": self.layer, "message": self.message,
            "location": self.location.to_json() if self.location else None,
            "fixes": [fix.to_json() for fix in self.fixes],
        }
