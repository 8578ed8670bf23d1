"""Run shapecheck over the real-world cases in ../shared/corpus and fixtures/corpus, as the corpus README describes.

`python tests/corpus.py [pytorch|keras|onnx] [pattern] [no-audit]` prints one line per case; tests/test_corpus.py asserts on the same runs.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path


def _find_corpus() -> Path:
    """SHAPECHECK_CORPUS, else ../shared/corpus beside the clone."""
    if "SHAPECHECK_CORPUS" in os.environ:
        return Path(os.environ["SHAPECHECK_CORPUS"])
    return Path(__file__).resolve().parents[2] / "shared" / "corpus"


CORPUS = _find_corpus()
# Our own cases in the same format, written from further real reports: checked beside the shared corpus.
OWN_CASES = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
FAMILIES = {"output_vs_loss": "loss", "labels_vs_loss": "loss", "internal_layer": "layer", "input_shape": "layer"}


@dataclass
class CaseRun:
    case: str
    expected: str
    buggy: list           # findings on the buggy variant
    fixed: list           # findings on the fixed variant
    where: str = ""       # EXPECTED["where"]: free text naming the layer
    buggy_error: str | None = None
    fixed_error: str | None = None
    fix_in_loss_code: bool = False   # the fix rewrites the loss call itself, which no CLI flag can express

    @property
    def fixed_checkable(self) -> bool:
        return not self.fix_in_loss_code

    @property
    def diagnosed(self) -> bool:
        family = FAMILIES.get(self.expected, self.expected)
        return any(FAMILIES.get(f.category, f.category) == family and f.severity == "error" for f in self.buggy)

    @property
    def fixed_clean(self) -> bool:
        return self.fixed_error is None and not any(f.severity == "error" for f in self.fixed)


def case_files(framework: str, pattern: str = "*") -> list[Path]:
    folders = dict.fromkeys(path.resolve() / "cases" for path in (CORPUS, OWN_CASES))
    files = [f for folder in folders if folder.is_dir() for f in sorted(folder.glob(f"{pattern}.py"))]
    return [f for f in files if _read_framework(f) == framework]


def _read_framework(path: Path) -> str:
    for line in path.read_text().splitlines():
        if line.startswith("FRAMEWORK"):
            return line.split("=", 1)[1].strip().strip("\"'")
    return ""


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(f"corpus_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _spec(shape, dtype: str | None) -> list[str]:
    shapes = shape if shape and isinstance(shape[0], tuple) else (shape,)
    suffix = f":{dtype}" if dtype else ""
    return [",".join(map(str, s)) + suffix for s in shapes]


def run_case(path: Path, verify_fixes: bool = False, audit: bool = True) -> CaseRun:
    """The buggy and fixed variants' findings; recipes are proven only when asked, as nothing here reads them."""
    saved_environ = dict(os.environ)
    try:
        return _run_case(path, verify_fixes, audit)
    finally:   # cases may set variables such as KERAS_BACKEND for their own run
        os.environ.clear()
        os.environ.update(saved_environ)


def _run_case(path: Path, verify_fixes: bool, audit: bool) -> CaseRun:

    from shapecheck import pipeline
    from shapecheck.engine import Result
    from shapecheck.errors import ShapecheckError
    from shapecheck.request import Flags

    case = _load(path)
    expected = case.EXPECTED["kind"]
    dtype = getattr(case, "INPUT_DTYPE", None)
    batch = (case.INPUT_SHAPE[0] if isinstance(case.INPUT_SHAPE[0], tuple) else case.INPUT_SHAPE)[0]
    # the fixed step of a dtype case feeds float32 data unless the case says otherwise
    fixed_dtype = getattr(case, "FIXED_INPUT_DTYPE", None if expected == "dtype" else dtype)
    fixed_shape = getattr(case, "FIXED_INPUT_SHAPE", case.INPUT_SHAPE)
    fixed_batch = (fixed_shape[0] if isinstance(fixed_shape[0], tuple) else fixed_shape)[0]
    from_logits = getattr(case, "FROM_LOGITS", None)
    # a case whose forward reads input values (lengths, masks) gives them with make_inputs(batch)
    make_inputs = getattr(case, "make_inputs", None)
    variants = (
        ("build_model", case.LOSS, from_logits, case.make_labels(batch), _spec(case.INPUT_SHAPE, dtype),
         make_inputs and make_inputs(batch)),
        ("fixed_model" if hasattr(case, "fixed_model") else "build_model",
         getattr(case, "FIXED_LOSS", case.LOSS), getattr(case, "FIXED_FROM_LOGITS", from_logits),
         getattr(case, "fixed_make_labels", case.make_labels)(fixed_batch), _spec(fixed_shape, fixed_dtype),
         make_inputs and getattr(case, "fixed_make_inputs", make_inputs)(fixed_batch)),
    )
    outcomes = []
    with tempfile.TemporaryDirectory() as tmp:
        for factory, loss, from_logits, labels, inputs, values in variants:
            target = f"{path}:{factory}"
            if getattr(case, "FRAMEWORK", "") == "onnx":   # the case builds an onnx.ModelProto: check the file
                import onnx

                target = str(Path(tmp) / f"{factory}.onnx")
                onnx.save(getattr(case, factory)(), target)
            labels_path = _save_labels(labels, Path(tmp) / factory)
            input_file = _save_inputs(values, Path(tmp) / f"{factory}_inputs.npz") if values is not None else None
            try:
                if isinstance(loss, dict):   # a model with several outputs: one loss per output name
                    loss = tuple(f"{output}={name}" for output, name in loss.items())
                flags = Flags(inputs=[] if input_file else inputs, loss=loss, labels_file=str(labels_path),
                              from_logits=from_logits, input_file=input_file, verify_fixes=verify_fixes,
                              audit=audit)
                result = pipeline.run(flags.request(target))
            except ShapecheckError as exc:   # what the CLI reports as a usage error (exit 2)
                result = Result(target, error={"kind": "usage", "message": str(exc)})
            outcomes.append(result)
    buggy, fixed = outcomes
    return CaseRun(path.stem, expected, buggy.findings, fixed.findings, case.EXPECTED.get("where") or "",
                   buggy.error and buggy.error["message"], fixed.error and fixed.error["message"],
                   fix_in_loss_code=hasattr(case, "fixed_make_loss") and not hasattr(case, "FIXED_LOSS"))


def _save_labels(labels, stem: Path) -> Path:
    """One array as .npy; a dict of arrays (one per model output) as an .npz keyed by output name."""
    import numpy as np

    def array(value):
        return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)

    if isinstance(labels, dict):
        np.savez(stem.with_suffix(".npz"), **{name: array(value) for name, value in labels.items()})
        return stem.with_suffix(".npz")
    np.save(stem.with_suffix(".npy"), array(labels))
    return stem.with_suffix(".npy")


def _save_inputs(values, path: Path) -> str:
    """A tuple of arrays as positional inputs (arr_0, arr_1, ...), a dict as keyword inputs."""
    import numpy as np

    def array(value):
        return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)

    if isinstance(values, dict):
        np.savez(path, **{name: array(v) for name, v in values.items()})
    else:
        np.savez(path, *[array(v) for v in (values if isinstance(values, (tuple, list)) else (values,))])
    return str(path)


def case_kind(path: Path) -> str:
    for line in path.read_text().splitlines():
        if '"kind"' in line:
            return line.split(":", 1)[1].strip().strip(",").strip("\"'")
    return ""


def run_exported(path: Path, verify_fixes: bool = False) -> CaseRun | None:
    """Export a PyTorch case's buggy model to ONNX (batch dynamic) and check the file like the original."""
    import numpy as np
    import torch

    from shapecheck import pipeline
    from shapecheck.request import Flags

    case = _load(path)
    shape = case.INPUT_SHAPE
    if isinstance(shape[0], tuple) or getattr(case, "INPUT_DTYPE", "float32") != "float32" or \
            hasattr(case, "make_inputs"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "model.onnx"
        try:
            model = case.build_model().eval()
            torch.onnx.export(model, (torch.randn(*shape),), str(onnx_path), input_names=["input"],
                              output_names=["output"], dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                              dynamo=False)
        except Exception:
            return None
        labels = case.make_labels(shape[0])
        labels_path = Path(tmp) / "labels.npy"
        np.save(labels_path, labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels))
        flags = Flags(inputs=[",".join(map(str, shape))], loss=case.LOSS, labels_file=str(labels_path),
                      verify_fixes=verify_fixes)
        result = pipeline.run(flags.request(str(onnx_path)))
    return CaseRun(path.stem, case.EXPECTED["kind"], result.findings, [], buggy_error=result.error and result.error["message"])


def main(framework: str = "pytorch", pattern: str = "*", audit: str = "audit", verbose: bool = True) -> int:
    """`audit`: "no-audit" runs the static checks only (what the training-signal audit adds is the difference)."""
    runs = [run_case(path, audit=audit != "no-audit") for path in case_files(framework, pattern)]
    for run in runs:
        codes = ",".join(f.rule for f in run.buggy if f.severity == "error") or run.buggy_error or "-"
        fixed = ",".join(f.rule for f in run.fixed if f.severity == "error") or run.fixed_error or "clean"
        state = "n/a" if not run.fixed_checkable else "ok " if run.fixed_clean else "DIRTY"
        print(f"{'ok ' if run.diagnosed else 'MISS'} {state:<5} {run.case:<44} "
              f"{run.expected:<18} buggy: {codes:<24} fixed: {fixed}")
        if verbose:
            layers = ", ".join(dict.fromkeys(str(f.layer) for f in run.buggy if f.severity == "error"))
            print(f"      layers: {layers or '-'} | where: {run.where}")
    diagnosed = sum(r.diagnosed for r in runs)
    checkable = [r for r in runs if r.fixed_checkable]
    clean = sum(r.fixed_clean for r in checkable)
    print(f"diagnosed {diagnosed}/{len(runs)}, fixed clean {clean}/{len(checkable)} "
          f"({len(runs) - len(checkable)} fixed only in the loss call)")
    return 0 if diagnosed == len(runs) and clean == len(checkable) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
