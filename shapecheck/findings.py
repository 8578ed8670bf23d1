"""Findings: plain data that rules produce and renderers print."""

from __future__ import annotations

from dataclasses import dataclass, field

from shapecheck.trace import Location

CATEGORIES = (
    "output_vs_loss", "labels_vs_loss", "activation_vs_loss", "label_range", "dtype", "internal_layer",
    "input_shape", "batch_dim",
)
SEVERITIES = ("error", "warning", "info")


@dataclass(frozen=True)
class Fix:
    title: str
    code: str = ""

    def to_json(self) -> dict:
        return {"title": self.title, "code": self.code}

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
