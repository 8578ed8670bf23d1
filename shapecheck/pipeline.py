"""One check, end to end: `run(request)` goes through its stages in order, load -> trace -> pair (which output each
loss and labels belong to) -> judge (the loss oracle) -> audit (the training signal, measured) -> rules -> verify
-> applicability (what `--fix` may apply) -> patch, and returns the `Result` every renderer reads. Every front-end
(the CLI, `[tool.shapecheck]`, the Python API, `run`/`watch`, the pytest plugin) builds a `Request` and calls `run`."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping

from shapecheck import audit as audit_mod
from shapecheck import engine, progress, suppress, targets
from shapecheck import heads as heads_mod
from shapecheck import verify as verification
from shapecheck.deadline import TraceTimeout, deadline
from shapecheck.engine import HeadCheck, Result
from shapecheck.errors import ShapecheckError
from shapecheck.findings import Finding, Severity
from shapecheck.inputs import ExampleInputs
from shapecheck.labels import LabelInfo, LabelSpec
from shapecheck.losses import KERAS_LOSSES, TORCH_LOSSES, LossContract, resolve_loss
from shapecheck.recipes import Recipes, ReExport, ScriptNames, re_export_note
from shapecheck.request import Head, Request
from shapecheck.rules import load_rules
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Trace

DEFAULT_BATCH = 8   # the batch for a model that declares its input shape when neither --input nor labels say one


def run(request: Request) -> Result:
    """Check one target; a target that cannot be loaded or traced is a result with an `error`."""
    try:
        loaded = load(request)
    except ShapecheckError as exc:
        return Result(target=request.target, error={"kind": exc.kind, "message": str(exc)})
    result = Result(target=loaded.target)
    try:
        trace(result, loaded, request)
        pair(result, loaded, request)
    except ShapecheckError as exc:
        result.error = {"kind": exc.kind, "message": str(exc)}
        return result
    except TraceTimeout as stopped:
        result.error = {"kind": "timeout", "message": f"the forward pass did not finish within {stopped.seconds:g} s "
                        f"(stopped at {stopped.where}); if it is only slow, raise --timeout"}
        return result
    judge(result, loaded.adapter)
    audit(result, loaded, request)
    rules(result, request)
    verify(result, loaded, request)
    applicability(result)
    if request.compute_patches:
        patch(result)
    return result


def traced(result: Result) -> Trace:
    """The trace of a result past the trace stage (every later stage runs only on a traced result)."""
    if result.trace is None:
        raise ValueError(f"{result.target} has no trace: the stages after `trace` need one")
    return result.trace


def load(request: Request) -> targets.LoadedTarget:
    return request.loaded or targets.load(request.target, request.trust)


def trace(result: Result, loaded: targets.LoadedTarget, request: Request) -> None:
    """Trace the model (unless building it already failed), at the batch of the labels when no input says one."""
    if loaded.failed_trace is not None:
        result.trace = loaded.failed_trace
        return
    progress.stage("trace")
    loaded.adapter.prepare()
    with deadline(request.timeout):
        result.trace = _traced(loaded, request, _batch(request))


def pair(result: Result, loaded: targets.LoadedTarget, request: Request) -> None:
    """Which output each loss and labels belong to (`shapecheck/heads.py`): the heads to check."""
    trace = traced(result)
    compiled = loaded.adapter.compiled_losses(loaded.model, request.heads[0].from_logits) \
        if loaded.model is not None else {}
    result.heads, notes = heads_mod.plan(request.heads, trace, compiled, lambda head: _loss(loaded, head), _labels)
    trace.notes.extend(notes + _unchecked(result.heads, request))
    table = KERAS_LOSSES if trace.framework == "keras" else TORCH_LOSSES
    for head in request.heads:
        if head.loss and _loss(loaded, head) is None:
            trace.notes.append(f"loss `{head.loss}` has no contract in shapecheck (known: {', '.join(table)}): "
                               "the rules that compare the output and labels with the loss were skipped")


def _unchecked(heads: list[HeadCheck], request: Request) -> list[str]:
    """What the check could not look at, said rather than passed over: no loss, no labels, labels without values."""
    if not any(head.loss for head in heads):
        return ["no loss given: only the layer and batch checks ran (give the loss you train with: --loss NAME)"] \
            if not any(head.loss for head in request.heads) else []
    if not any(head.labels for head in heads):
        return ["no labels given: the output was not checked against labels (--labels SHAPE, or --labels-file "
                "for their values too)"]
    if any(head.loss and head.labels and head.labels.source == "spec" for head in heads):
        return ["labels given as a shape: their values (class ids, ranges, one-hot rows) were not checked; "
                "--labels-file checks them"]
    return []


def judge(result: Result, adapter) -> None:
    """The framework's own verdict on each head's loss, output and labels (None when one of them is unknown)."""
    progress.stage("loss")
    trace = traced(result)
    for head in result.heads:
        output = trace.at_output(head.output).output
        loss, labels = head.loss, head.labels
        if output is None or loss is None or labels is None or not labels.shape:
            head.loss_check = None
        else:
            head.loss_check = adapter.check_loss(output, labels, loss)


def audit(result: Result, loaded: targets.LoadedTarget, request: Request) -> None:
    """Measure the training signal on a tiny real batch (`shapecheck/audit.py`): gradients, input dependence and
    the loss at initialisation, for every head whose loss accepts its output and labels."""
    trace = traced(result)
    heads = [audit_mod.AuditHead(head.output, head.loss, head.labels, _head_post(request.post, head)) for head in result.heads
             if head.loss is not None and head.labels is not None and head.labels.shape
             and not (head.loss_check is not None and head.loss_check.status == "raises")]
    if not request.audit or loaded.model is None or trace.failure is not None or not heads:
        return
    computed = audit_mod.activations(trace, min(trace.batch or 1, audit_mod.MAX_SAMPLES))
    if computed > audit_mod.MAX_ACTIVATIONS:
        trace.notes.append(f"training-signal audit skipped: the forward pass computes {computed / 1e6:,.0f}M values "
                           f"(limit {audit_mod.MAX_ACTIVATIONS // 10**6}M)")
        return
    progress.stage("audit")
    try:
        with deadline(request.timeout):
            trace.audit, note = loaded.adapter.audit(loaded.model, trace.inputs, _example(loaded, request), heads)
    except TraceTimeout as stopped:
        note = f"training-signal audit stopped after {stopped.seconds:g} s (--timeout): its checks did not run"
    if note:
        trace.notes.append(note)


def rules(result: Result, request: Request) -> None:
    """The findings of the selected rules for every head, with the configured severities, less the suppressed
    ones. A finding every head's check gives is about the model and reported once; the others name their head."""
    progress.stage("rules")
    trace = traced(result)
    names = script_names(request.loss_site)
    recipes = recipes_for(trace.framework, trace.producer, trace.library, names)
    runs = [engine.check(trace.at_output(head.output), head.loss, head.labels, recipes, request.select,
                         request.ignore, head.loss_check) for head in result.heads]
    findings: list[Finding] = []
    for head, found in zip(result.heads, runs):
        for finding in found:
            if all(any(_same(finding, other) for other in run) for run in runs):   # about the model: once
                if not any(_same(finding, seen) for seen in findings):
                    findings.append(finding)
            else:
                finding.head = head.name if len(runs) > 1 else ""
                findings.append(finding)
    severity: dict[str, Severity] = dict(request.severity)
    for finding in findings:
        finding.severity = severity.get(finding.rule, finding.severity)
    for finding in findings:
        finding.fixes = [_in_users_terms(fix, names, trace) for fix in finding.fixes]
    kept, result.suppressed = suppress.partition(findings)
    result.findings = sorted(kept, key=lambda f: (engine.SEVERITY_ORDER[f.severity], f.rule))


def _in_users_terms(fix, names: ScriptNames, trace: Trace):
    """A fix as the user acts on it: its recipe naming the labels as their training code does; for an exported
    graph, a change to the model said to go in the source model, with the export call to run again."""
    fix = dataclasses.replace(fix, code=dataclasses.replace(fix.recipe, text=names.speak(fix.recipe.text)))
    changes_model = any(edit.on in ("layer", "output", "model") for edit in fix.edits)
    if trace.framework == "onnx" and changes_model and "re-export" not in fix.recipe.text:
        fix = dataclasses.replace(fix, title=f"{fix.title} ({re_export_note(trace.producer)})")
    return fix


def _head_post(post, head: HeadCheck):
    """The user's code between the model and one head's loss: a step with several losses (`run`) knows each."""
    for_head = getattr(post, "for_head", None)
    return for_head(head.name) if for_head is not None and head.name else post


def _same(finding: Finding, other: Finding) -> bool:
    return (finding.rule, finding.layer, finding.message) == (other.rule, other.layer, other.message)


def verify(result: Result, loaded: targets.LoadedTarget, request: Request) -> None:
    """Prove each recipe on a copy of the model by running this pipeline again on it (`Recheck`), head by head:
    a head's findings with its own loss and labels, the model's findings with the first head's."""
    if not request.verify_fixes:
        return
    trace = traced(result)
    try:
        with deadline(request.timeout):
            for index, head in enumerate(result.heads):
                mine = [f for f in result.findings if f.head == head.name or (index == 0 and not f.head)]
                view = Result(result.target, trace.at_output(head.output), [head],
                              [f for f in result.findings if f.head in ("", head.name)])
                audited = any(_measured(f) for f in mine)
                verification.verify(view, loaded, _example(loaded, request), Recheck(request, head, audited),
                                    _head_post(request.post, head), mine)
    except TraceTimeout:
        trace.notes.append("verifying the fix recipes took longer than --timeout; they are unverified")


def _measured(finding: Finding) -> bool:
    """The finding is, or explains, a fact the training-signal audit measured."""
    rules = load_rules()
    return any(code in rules and rules[code].subject == "signal" for code in (finding.rule, *finding.explains))


def applicability(result: Result) -> None:
    """Whether `--fix` may apply each fix, `--unsafe-fixes` only, or neither (and why): where its edit would go."""
    from shapecheck import patch as patch_mod

    for finding in result.findings:
        kinds = [patch_mod.applicability(result.trace, finding, fix) for fix in finding.fixes]
        finding.fixes = [dataclasses.replace(fix, applicability=kind, reason=reason, placed=placed)
                         for fix, (kind, reason, placed) in zip(finding.fixes, kinds)]


def patch(result: Result) -> None:
    """The source patch of each finding's verified recipe, where it maps onto the user's own code."""
    from shapecheck import patch as patch_mod

    for index, finding in enumerate(result.findings):
        if not any(fix.verified for fix in finding.fixes):
            continue
        try:
            patches = patch_mod.for_finding(result, finding)
        except Exception:   # source that libcst cannot parse: the report still goes out, without a fix
            continue
        if patches:
            result.patches[index] = patches


@dataclasses.dataclass(frozen=True)
class Recheck:
    """How verification re-enters the pipeline (`verify.Recheck`): an edited copy is traced, judged and ruled
    on as `request` was, at `head`; `audited`: the head's training signal was measured, and is measured again on
    the copy, so that a recipe must clear what the audit found, not only what a rule recognised."""

    request: Request
    head: HeadCheck
    audited: bool = False

    def __call__(self, loaded: targets.LoadedTarget, labels: LabelInfo | None, loss: LossContract | None,
                 trace: Trace | None, inputs: list[TensorMeta] | None) -> tuple[Trace, list[Finding]]:
        request = self.request if inputs is None else \
            dataclasses.replace(self.request, inputs=tuple(inputs), example=None)
        head = dataclasses.replace(self.head, loss=loss, labels=labels, loss_check=None)
        result = Result(target=loaded.target, heads=[head])
        # a reused trace keeps no audit: it measured the model under the loss and labels before the recipe
        result.trace = dataclasses.replace(trace, audit=None, notes=list(trace.notes)) if trace is not None else \
            _traced(loaded, request, labels.shape[0] if labels is not None and labels.shape else _batch(request))
        judge(result, loaded.adapter)
        if self.audited:
            audit(result, loaded, request)
        rules(result, request)
        return traced(result), result.findings


def recipes_for(framework: str, producer: str = "", library: str = "",
                names: ScriptNames | None = None) -> Recipes | ReExport:
    if framework == "onnx":   # an exported graph: fix it in the framework it came from, then re-export
        from shapecheck.recipes.onnx import OnnxRecipes

        source = {"pytorch": "torch", "tf2onnx": "keras", "keras2onnx": "keras"}.get(producer)
        return ReExport(_framework_recipes(source), OnnxRecipes(), producer) if source else OnnxRecipes()
    return _framework_recipes(framework, library, names)


def _framework_recipes(framework: str, library: str = "", names: ScriptNames | None = None) -> Recipes:
    if framework == "torch":
        from shapecheck.recipes.torch import TorchRecipes
        return TorchRecipes(library, names)
    if framework == "keras":
        from shapecheck.recipes.keras import KerasRecipes
        return KerasRecipes(library, names)
    return Recipes()


def script_names(site) -> ScriptNames:
    """The names the user's loss call uses (`F.cross_entropy(logits, yb)`), when `run` saw it; else the defaults."""
    from shapecheck import decides

    found = decides.loss_call(site) if site is not None else None
    if found is None:
        return ScriptNames()
    callee, output, labels = found
    simple = re.compile(r"[A-Za-z_][\w.]*(\[[^\]]*\])?$")   # `yb`, `batch.y`, `batch["label"]`: not an expression
    return ScriptNames(labels=labels if simple.match(labels) else "labels",
                       output=output if simple.match(output) else "output", loss=callee or "criterion")


def _loss(loaded: targets.LoadedTarget, head: Head) -> LossContract | None:
    """The loss a head names; None when it names none (the model's compiled ones pair by output) or one
    shapecheck has no contract for (the layer and batch rules still run)."""
    if not head.loss:
        return None
    try:
        return dataclasses.replace(resolve_loss(head.loss, loaded.adapter.FRAMEWORK, head.from_logits),
                                   options=tuple(head.loss_options))
    except ShapecheckError:
        return None


def _labels(head: Head, loss: LossContract | None) -> heads_mod.Labels:
    """The head's labels; a shape without a dtype takes the one the loss reads."""
    if isinstance(head.labels, LabelSpec):
        return head.labels.info(loss.target_dtype if loss else "float32")
    return head.labels


def _batch(request: Request) -> int:
    """The batch the labels hold, for a model that declares its input shape when no input gives one."""
    for head in request.heads:
        labels = head.labels
        found = next(iter(labels.values()), None) if isinstance(labels, Mapping) else labels
        if found is not None and found.shape:
            return found.shape[0]
    return DEFAULT_BATCH


def _example(loaded: targets.LoadedTarget, request: Request) -> ExampleInputs | None:
    """The input values to trace with: none when shapes are given, else the request's or the factory's."""
    return None if request.inputs else request.example or loaded.example


def _traced(loaded: targets.LoadedTarget, request: Request, batch: int) -> Trace:
    """Trace with the given shapes, else the example values, else the model's declared input. Adapters that take
    values (PyTorch) get them and the user's code between model and loss; the others take their shapes."""
    adapter, example = loaded.adapter, _example(loaded, request)
    inputs = list(request.inputs) or (example.specs() if example else _declared_inputs(loaded, batch))
    trace = adapter.trace(loaded.model, inputs, loaded.target, loaded.sites, example=example, post=request.post)
    trace.notes[:0] = loaded.notes
    if example is not None and not adapter.TAKES_VALUES:
        trace.notes.append(f"input shapes and dtypes taken from {example.source}")
    return trace


def _declared_inputs(loaded: targets.LoadedTarget, batch: int) -> list[TensorMeta]:
    inputs = loaded.adapter.declared_inputs(loaded.model, batch)
    if not inputs:
        raise ShapecheckError(f"`{loaded.target}` declares no input shape: give one with --input, "
                              "e.g. --input 16,3,224,224")
    return inputs
