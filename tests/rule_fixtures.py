"""Load a rule fixture (fixtures/<framework>/rules/scNNN_*.py) and check its bad or good model.

A fixture module defines `bad()` and `good()` factories, `INPUT` (one spec or a list), `LOSS`, and the labels as
a `LABELS` spec or a `make_labels()` returning an array (its values enable the label-value rules). `GOOD_INPUT`,
`GOOD_LOSS`, `GOOD_LABELS` and `make_good_labels()` override them for the good model.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FRAMEWORKS = ("torch", "keras", "onnx")


def fixture_paths() -> list[Path]:
    """Every framework's rule fixtures (fixtures/<framework>/rules/scNNN_*.py)."""
    return sorted(path for framework in FRAMEWORKS
                  for path in (ROOT / "fixtures" / framework / "rules").glob("sc[0-9][0-9][0-9]_*.py"))


def fixture_id(path: Path) -> str:
    return f"{path.parent.parent.name}/{path.stem}"


def rule_code(path: Path) -> str:
    return path.stem[:5].upper()


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location(f"fixture_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))   # fixtures may share helpers in their folder (onnx/rules/graphs.py)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module


def run_fixture(path: Path, variant: str, tmp_path: Path, verify_fixes: bool = True):
    """Check `bad` or `good` from a fixture with shapecheck's own API; returns the Result. `verify_fixes=False`
    skips proving the recipes (a re-check and a training step each) for callers that never look at them."""
    import numpy as np

    from shapecheck import pipeline
    from shapecheck.request import Flags

    module = load_module(path)
    good = variant == "good"

    def pick(name):
        return getattr(module, f"GOOD_{name}", getattr(module, name, None)) if good else getattr(module, name, None)

    inputs = pick("INPUT")
    inputs = [inputs] if isinstance(inputs, str) else list(inputs)
    make_labels = (getattr(module, "make_good_labels", None) if good else None) or getattr(module, "make_labels", None)
    labels_file = None
    if make_labels is not None and (not good or pick("LABELS") is None or hasattr(module, "make_good_labels")):
        labels_file = tmp_path / f"{variant}_labels.npy"
        np.save(labels_file, np.asarray(make_labels()))
    target = f"{path.relative_to(ROOT)}:{variant}"
    flags = Flags(inputs=inputs, loss=pick("LOSS"), labels=None if labels_file else pick("LABELS"),
                  labels_file=str(labels_file) if labels_file else None, verify_fixes=verify_fixes)
    return pipeline.run(flags.request(target))
