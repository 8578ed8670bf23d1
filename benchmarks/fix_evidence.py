"""How far the fixes go on the corpus's buggy cases: how many error findings come with a verified fix recipe, or
are display-only with a stated reason (covered); how each finding's best fix applies (safe, unsafe, display); and
how many source patches (`--fix --unsafe-fixes`) apply and leave a file that checks clean and trains.

`python benchmarks/fix_evidence.py [pytorch|keras|onnx ...] [--pattern GLOB] [-v]` prints one line per uncovered
error finding (why), one per patched case, and the shares. Runs every case in ../shared/corpus and fixtures/corpus.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import corpus  # noqa: E402

ALL_FIXES = ("safe", "unsafe")   # what `--fix --unsafe-fixes` applies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("frameworks", nargs="*", default=["pytorch", "keras", "onnx"])
    parser.add_argument("--pattern", default="*")
    parser.add_argument("-v", "--verbose", action="store_true", help="also list the verified findings")
    args = parser.parse_args()
    total = Counter()
    for framework in args.frameworks:
        counts = Counter()
        for path in corpus.case_files(framework, args.pattern):
            counts.update(_verified_recipes(path, args.verbose))
            if framework != "onnx":   # an exported graph has no source of the user's to patch
                counts.update(_source_patch(path))
        total.update(counts)
        _report(framework, counts)
    if len(args.frameworks) > 1:
        _report("all", total)
    return 0


def _report(name: str, counts: Counter):
    def share(part, whole):
        return f"{counts[part]}/{counts[whole]} ({counts[part] / counts[whole]:.0%})" if counts[whole] else "0/0"
    print(f"{name}: error findings with a verified recipe {share('verified', 'findings')}, confirmed by a training "
          f"step {counts['trained']}; covered (verified, or display-only with a reason) {share('covered', 'findings')}; "
          f"best fix safe {counts['safe']}, unsafe {counts['unsafe']}, display {counts['display']}, none "
          f"{counts['none']}; source patches: {counts['patchable']} cases with one ({counts['patch_safe']} safe only), "
          f"clean after it and trained {share('patch_clean', 'patchable')}")


def _verified_recipes(path: Path, verbose: bool) -> Counter:
    counts = Counter()
    run = corpus.run_case(path, verify_fixes=True)
    for finding in (f for f in run.buggy if f.severity == "error"):
        verified = any(fix.verified for fix in finding.fixes)
        explained = bool(finding.fixes) and all(fix.applicability == "display" and fix.reason for fix in finding.fixes)
        counts["findings"] += 1
        counts["verified"] += verified
        counts["covered"] += verified or explained
        counts["trained"] += any(fix.verified and "training step on" in fix.evidence for fix in finding.fixes)
        counts[_best(finding)] += 1
        if not (verified or explained) or verbose:
            why = "; ".join(f"{fix.title[:40]}: {fix.applicability}: {fix.evidence or fix.reason or 'no reason'}"
                            for fix in finding.fixes) or "no fix"
            print(f"{'ok  ' if verified or explained else 'MISS'} {run.case:<44} {finding.rule} {finding.layer}: {why}")
    return counts


def _best(finding) -> str:
    """How the finding's best verified fix applies: safe, unsafe or display; `none` without a verified fix."""
    kinds = {fix.applicability for fix in finding.fixes if fix.verified}
    return next((kind for kind in ("safe", "unsafe", "display") if kind in kinds), "none")


def _source_patch(path: Path) -> Counter:
    """Copy the case into a project folder, check it, write the --fix patch, and check and train the patched file
    with the labels and loss the patched recipes leave (their label and loss steps applied as the user would)."""
    from shapecheck import patch, pipeline
    from shapecheck.edits import apply_to_labels, apply_to_loss

    counts = Counter()
    with tempfile.TemporaryDirectory() as folder, _working_directory(folder):
        copy = Path(folder) / path.name
        shutil.copy(path, copy)
        case = corpus._load(copy)
        if isinstance(case.LOSS, dict):   # several outputs, one loss each: this benchmark re-checks one head
            print(f"skip patch {path.stem:<44} several outputs")
            return counts
        request = _request(case, copy)
        result = pipeline.run(request)
        patches = patch.plan([result], ALL_FIXES)
        if not patches:
            return counts
        counts["patchable"] += 1
        counts["patch_safe"] += all(fix.applicability == "safe" for fix in _patched_fixes(result)
                                    if fix.applicability != "display")   # the chain's label steps are display
        patch.write(patches)
        for name in [n for n in sys.modules if n.startswith("_shapecheck_target_")]:   # import the patched file
            del sys.modules[name]
        steps = tuple(edit for fix in _patched_fixes(result) for edit in fix.edits if edit.on in ("labels", "loss"))
        [head] = request.heads
        loss = apply_to_loss(result.loss, steps, result.trace.framework)
        head = dataclasses.replace(head, labels=apply_to_labels(head.labels, steps),
                                   loss=loss.name if loss else head.loss, loss_options=loss.options if loss else (),
                                   from_logits=loss.from_logits if loss else head.from_logits)
        request = dataclasses.replace(request, heads=(head,))
        after = pipeline.run(request)
        errors = [f.rule for f in after.findings if f.severity == "error"] or ([after.error["message"]] if after.error
                                                                              else [])
        trained = _train(after, loss, request) if not errors else "not trained"
        clean = not errors and trained.startswith("one training step")
        counts["patch_clean"] += clean
        print(f"{'ok  ' if clean else 'FAIL'} patch {path.stem:<44} {', '.join(p.shown for p in patches)}: "
              f"{'errors ' + ', '.join(errors) if errors else trained}")
    return counts


def _patched_fixes(result):
    from shapecheck import patch

    return [fix for finding in result.findings for fix in patch.applied_chain(result, finding, ALL_FIXES)]


def _train(result, loss, request) -> str:
    from shapecheck import targets

    loaded = targets.load(result.target, False)
    adapter = loaded.adapter
    try:
        [head] = request.heads
        model = adapter.edited(loaded.model, (), head.labels)
        return adapter.train_step(model, result.trace.inputs, request.example, head.labels, loss)
    except Exception as exc:
        return f"training failed: {type(exc).__name__}: {exc}"


def _request(case, copy: Path):
    import numpy as np

    from shapecheck.request import Flags

    batch = (case.INPUT_SHAPE[0] if isinstance(case.INPUT_SHAPE[0], tuple) else case.INPUT_SHAPE)[0]
    labels = case.make_labels(batch)
    labels_path = copy.parent / "labels.npy"
    np.save(labels_path, labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels))
    values = case.make_inputs(batch) if hasattr(case, "make_inputs") else None
    input_file = corpus._save_inputs(values, copy.parent / "inputs.npz") if values is not None else None
    inputs = [] if input_file else corpus._spec(case.INPUT_SHAPE, getattr(case, "INPUT_DTYPE", None))
    flags = Flags(inputs=inputs, loss=case.LOSS, labels_file=str(labels_path),
                  from_logits=getattr(case, "FROM_LOGITS", None), input_file=input_file)
    return flags.request(f"{copy}:build_model")


@contextlib.contextmanager
def _working_directory(folder: str):
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


if __name__ == "__main__":
    sys.exit(main())
