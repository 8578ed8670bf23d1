"""Acceptance: every PyTorch, Keras and ONNX case of ../shared/corpus is diagnosed with its expected category, and its
fixed version has no error. The corpus is not part of this repository; CI has it next to the clone."""

from __future__ import annotations

import pytest

from corpus import CORPUS, case_files, case_kind, run_case, run_exported
from shapecheck.rules import load_rules

CASES = case_files("pytorch") + case_files("keras") + case_files("onnx")
pytestmark = [pytest.mark.skipif(not CASES, reason=f"no corpus cases in {CORPUS} (set SHAPECHECK_CORPUS)"),
              pytest.mark.slow]   # hundreds of real models


@pytest.fixture(scope="module")
def runs():
    return {}


@pytest.fixture
def run(request, runs):
    path = request.param
    if path not in runs:
        runs[path] = run_case(path)
    return runs[path]


def _describe(findings) -> str:
    return "; ".join(f"{f.rule} [{f.category}] {f.message}" for f in findings) or "no findings"


# Our own cases shapecheck does not diagnose yet, with why: strict, so a fix shows up as an unexpected pass.
KNOWN_MISSES = {
    "zk06_unet_reshape_nclasses_hw_then_permute_channels_last": "no rule follows pixels through Reshape + Permute",
    "vk01_conv3d_convlstm_autoencoder_time_axis_is_rows": "no rule checks which axis a ConvLSTM2D recurs over",
}


def _buggy_param(path):
    reason = KNOWN_MISSES.get(path.stem)
    return pytest.param(path, id=path.stem, marks=pytest.mark.xfail(reason=reason, strict=True) if reason else ())


@pytest.mark.parametrize("run", [_buggy_param(path) for path in CASES], indirect=True)
def test_buggy_case_is_diagnosed(run):
    assert run.buggy_error is None, run.buggy_error
    assert run.diagnosed, f"expected a {run.expected} error, got: {_describe(run.buggy)}"


@pytest.mark.parametrize("run", CASES, ids=lambda p: p.stem, indirect=True)
def test_fixed_case_is_clean(run):
    if not run.fixed_checkable:
        pytest.skip("the fix rewrites the loss call (fixed_make_loss), which no CLI option expresses")
    assert run.fixed_error is None, run.fixed_error
    assert run.fixed_clean, _describe([f for f in run.fixed if f.severity == "error"])


TRAINING_MODE_RULES = {"SC122"}   # auxiliary outputs that torchvision models return only in training mode
MEASURED_RULES = {code for code, rule in load_rules().items() if rule.subject == "signal"}   # the audit's
EXPORTABLE = [case for case in case_files("pytorch") if case_kind(case) in ("output_vs_loss", "activation_vs_loss")]


@pytest.mark.parametrize("path", EXPORTABLE, ids=lambda p: p.stem)
def test_exported_case_is_diagnosed_like_its_pytorch_original(path, runs):
    """The PyTorch case exported to ONNX gets the same family of error as the module itself."""
    if "LOSS = {" in path.read_text():
        pytest.skip("a loss per output: an export traced in eval mode names (and may drop) the outputs differently")
    exported = run_exported(path)
    if exported is None:
        pytest.skip("torch.onnx.export cannot export this model")
    original = runs.get(path) or run_case(path)
    errors = {f.rule for f in original.buggy if f.severity == "error"}
    if errors <= TRAINING_MODE_RULES:
        pytest.skip("the bug exists only in training mode; the export is traced in eval mode")
    if errors <= MEASURED_RULES:
        pytest.skip("found only by the training-signal audit, which does not run on ONNX graphs")
    assert exported.diagnosed == original.diagnosed, [f.rule for f in exported.buggy]
