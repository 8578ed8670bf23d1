"""The rule catalogue. Each rule is a `Rule` subclass in its own module; subclasses register themselves.

Third-party rule packs register through the `shapecheck.rules` entry-point group (a module to import).
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

from shapecheck.findings import CATEGORIES, SEVERITIES, Finding, Fix
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.oracle import LossCheck
from shapecheck.recipes import Recipes
from shapecheck.trace import Layer, Location, Trace

REGISTRY: dict[str, type[Rule]] = {}


@dataclass
class Context:
    """What a rule may look at: the trace, the declared loss and the labels (either may be missing)."""

    trace: Trace
    loss: LossContract | None
    labels: LabelInfo | None
    recipes: Recipes
    loss_check: LossCheck | None = None   # the framework's own verdict on the output, the loss and the labels

    @property
    def output(self):
        return self.trace.output


class Rule:
    code: ClassVar[str]
    name: ClassVar[str]
    category: ClassVar[str]
    severity: ClassVar[str] = "error"
    summary: ClassVar[str]
    # What its error findings explain, so the engine can drop a catch-all: "forward" (the forward pass raised;
    # else SC901 reports it), "loss:shape" / "loss:dtype" / "loss:values" (the loss rejected the labels'
    # shape, dtype or values; else SC100 reports it).
    explains: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        assert cls.category in CATEGORIES and cls.severity in SEVERITIES, cls
        if cls.code in REGISTRY and REGISTRY[cls.code] is not cls:
            raise ValueError(f"rule code {cls.code} is used twice ({REGISTRY[cls.code].__name__}, {cls.__name__})")
        REGISTRY[cls.code] = cls

    def check(self, ctx: Context) -> Iterator[Finding]:
        raise NotImplementedError

    def finding(self, message: str, layer: Layer | str | None = None, fixes: list[Fix] | tuple = (),
                location: Location | None = None, severity: str | None = None) -> Finding:
        if isinstance(layer, Layer):
            location = location or layer.source
            layer = layer.name
        return Finding(self.code, self.name, severity or self.severity, self.category, message, layer or None,
                       location, list(fixes))


def load_rules() -> dict[str, type[Rule]]:
    """Import every built-in rule module and every registered rule pack, once."""
    if not REGISTRY:
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")
        from importlib.metadata import entry_points
        for entry in entry_points(group="shapecheck.rules"):
            entry.load()
    return dict(sorted(REGISTRY.items()))
