"""shapecheck reports an error exactly when the framework's own loss raises, broadcasts the labels or learns
nothing (one class), over a generated sweep of output shapes, label shapes and every loss (tests/loss_sweep.py)."""

from __future__ import annotations

import functools

import pytest

import loss_sweep

# Both tests judge the same combinations: build them once per framework (the sweep is the file's whole cost).
sweep = functools.cache(loss_sweep.sweep)
pytestmark = pytest.mark.slow   # hundreds of real loss calls per framework


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_errors_exactly_when_the_framework_rejects(framework):
    cases = sweep(framework)
    assert {case.truth for case in cases} >= {"accepts", "raises", "broadcasts"}, "the sweep must cover each verdict"
    disagreements = [str(case) for case in cases if not case.agrees]
    assert not disagreements, f"{len(disagreements)}/{len(cases)} disagree:\n" + "\n".join(disagreements[:20])


@pytest.mark.parametrize("framework", ["torch", "keras"])
def test_the_framework_free_shape_model_agrees(framework):
    """The model that judges ONNX graphs without importing a framework, held to both frameworks' verdicts."""
    cases = sweep(framework)
    disagreements = [str(case) for case in cases if not case.model_agrees]
    assert not disagreements, f"{len(disagreements)}/{len(cases)} disagree:\n" + "\n".join(disagreements[:20])
