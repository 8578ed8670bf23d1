"""Prove fix recipes before anyone reads them: apply each recipe's edits in memory, re-trace, re-check with the
framework's loss and every rule, then run one real training step on a tiny batch.

A recipe is verified when the finding it fixes is gone and no error appears that was not there before; the step
then confirms it trains (a loss value and a backward pass). A recipe whose edit cannot be applied in memory (a
compiled graph, advice such as "read the mask without scaling") stays unverified, and says why in JSON.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Protocol

from shapecheck import progress
from shapecheck.edits import Unsupported, apply_to_inputs, apply_to_labels, apply_to_loss, model_edits
from shapecheck.engine import Result
from shapecheck.errors import ShapecheckError
from shapecheck.findings import Finding, Fix
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Trace

if TYPE_CHECKING:
    from shapecheck.targets import LoadedTarget

# Recipes tried per target (a finding rarely has more than three): a count, not seconds, so that the output never
# depends on the machine's speed; the user's --timeout still bounds the wall time.
MAX_ATTEMPTS = 16


@dataclasses.dataclass
class Attempt:
    errors: set[tuple[str, str | None]]     # (rule, layer) of the error findings left
    findings: list[Finding]
    trace: object
    labels: object
    loss: object
    model: object = None


class Recheck(Protocol):
    """The pipeline, re-entered for an edited copy: trace it (unless `trace` is given: the model and its inputs
    are unchanged; at `inputs` when given) and check it as the first run did; returns (trace, findings)."""

    def __call__(self, loaded: LoadedTarget, labels: LabelInfo | None, loss: LossContract | None,
                 trace: Trace | None, inputs: list[TensorMeta] | None) -> tuple[Trace, list[Finding]]: ...


def verify(result: Result, loaded: LoadedTarget, example, recheck: Recheck, post=None,
           findings: list[Finding] | None = None) -> None:
    """Mark the fixes of `findings` (default: all of `result.findings`) verified or not (in place) and list
    verified ones first.

    `example` holds the input values the trace used, if any; `post` the user's code between the model and the
    loss, which the training step replays."""
    trace = result.trace
    if trace is None or loaded.model is None or not any(f.fixes for f in result.findings):
        return
    progress.stage("verify fixes")
    before = _error_keys(result.findings)
    attempts = 0
    for finding in result.findings if findings is None else findings:
        verified_fixes = []
        for chain in _chains(finding.fixes):
            edits = tuple(edit for fix in chain for edit in fix.edits)
            if not edits or not all(fix.edits for fix in chain):
                verified_fixes.append(chain)
                continue
            if not all(fix.certain for fix in chain):   # a re-check would only prove the lower bound it was given
                verified_fixes.append(_marked(chain, False, "not verified: the size is a lower bound read from one "
                                              "batch of labels, not the dataset's class count"))
                continue
            if attempts >= MAX_ATTEMPTS:
                verified_fixes.append(_marked(chain, False, "not tried: the verification budget was spent"))
                continue
            attempts += 1
            ok, evidence = _try(result, trace, loaded, example, recheck, finding, edits, before, post)
            verified_fixes.append(_marked(chain, ok, evidence))
        verified_fixes.sort(key=lambda chain: not chain[0].verified)   # stable: the rule's order otherwise
        finding.fixes = [fix for chain in verified_fixes for fix in chain]


def _chains(fixes: list[Fix]) -> list[list[Fix]]:
    """Fixes grouped with the ones that join them ("Replace the head", "Then match the labels")."""
    chains: list[list[Fix]] = []
    for fix in fixes:
        if fix.joins and chains:
            chains[-1].append(fix)
        else:
            chains.append([fix])
    return chains


def _marked(chain: list[Fix], verified: bool, evidence: str) -> list[Fix]:
    return [dataclasses.replace(fix, verified=verified, evidence=evidence) for fix in chain]


def _error_keys(findings: list[Finding]) -> set[tuple[str, str | None]]:
    return {(f.rule, f.layer) for f in findings if f.severity == "error"}


def _try(result: Result, trace: Trace, loaded: LoadedTarget, example, recheck: Recheck, finding: Finding, edits,
         before, post) -> tuple[bool, str]:
    """(verified, evidence) for one recipe's edits."""
    framework = trace.framework
    editor = loaded.adapter.edited
    # data transforms change the shapes fed in; with input values (PyTorch only) the model's copy applies them
    inputs = apply_to_inputs(trace.inputs, edits, -1 if framework == "keras" else 1) \
        if example is None else None
    changes = model_edits(edits, inputs_applied=inputs is not None)
    try:
        labels = apply_to_labels(result.labels, edits)
        loss = apply_to_loss(result.loss, edits, framework)
        # always a copy: the training step must never touch the user's weights
        model = _copy(editor, loaded.model, changes, labels)
        retrace = changes or inputs
        trace, findings = recheck(dataclasses.replace(loaded, model=model or loaded.model), labels, loss,
                                  None if retrace else trace, inputs)
    except Unsupported as why:
        return False, f"not verified: {why}"
    except ShapecheckError as exc:
        return False, f"not verified: {exc}"
    except Exception as exc:   # the edit itself broke the model: the recipe is wrong for it
        return False, f"applying it failed: {_line(exc)}"
    if any(f.rule == finding.rule and f.layer == finding.layer for f in findings):
        return False, f"re-checked with it applied: {finding.rule} is still reported"
    left = _error_keys(findings)
    if left - before:
        return False, f"re-checked with it applied: new error {', '.join(sorted(rule for rule, _ in left - before))}"
    if left:   # other findings' errors remain: a training step would fail on them, not on this recipe
        return True, f"re-checked: {finding.rule} is gone and nothing new appears ({_rules(left)} still to fix)"
    return _step(loaded, model, example, trace, labels, loss, post)


def _rules(keys) -> str:
    return ", ".join(sorted({rule for rule, _ in keys}))


def _copy(editor, model, changes, labels):
    """The edited copy; without changes a copy only serves the training step, so one that cannot be made (a
    Keras Lambda that does not rebuild) means no step, not an unverified recipe."""
    if changes:
        return editor(model, changes, labels)
    try:
        return editor(model, changes, labels)
    except Unsupported:
        return None


def _step(loaded, model, example, trace, labels, loss, post) -> tuple[bool, str]:
    """The real training step that confirms a re-checked recipe, where the framework and the model allow one."""
    stepper = loaded.adapter.train_step
    done = "re-checked clean" if trace.audit is None else "re-checked and re-audited clean"
    if not loaded.adapter.TRAINS:
        return True, f"{done} (no training step for this framework)"
    if model is None:
        return True, f"{done} (no training step: the model cannot be copied for one)"
    if labels is None or loss is None or trace.failure is not None:
        return True, f"{done} (no labels or loss to train with)"
    if labels.per_output and loaded.adapter.FRAMEWORK == "keras":
        return True, f"{done} (no training step: Keras trains every output at once, with one loss each)"
    try:
        return True, f"{done}; {stepper(model, trace.inputs, example, labels, loss, post=post)}"
    except Unsupported as why:
        return True, f"{done} (no training step: {why})"
    except Exception as exc:
        return False, f"{done}, but the training step failed: {_line(exc)}"


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
