"""One check, end to end: `run(request)` goes through its stages in order, load -> trace -> judge (the loss
oracle) -> rules -> verify -> patch, and returns the `Result` every renderer reads. Every front-end (the CLI,
`[tool.shapecheck]`, the Python API, `run`/`watch`, the pytest plugin) builds a `Request` and calls `run`."""

from __future__ import annotations

import dataclasses

from shapecheck import engine, progress, targets
from shapecheck import labels as labels_mod
from shapecheck import verify as verification
from shapecheck.deadline import TraceTimeout, deadline
from shapecheck.engine import Result
from shapecheck.errors import ShapecheckError
from shapecheck.findings import Finding, Severity
from shapecheck.inputs import ExampleInputs
from shapecheck.labels import LabelInfo, LabelSpec
from shapecheck.losses import KERAS_LOSSES, TORCH_LOSSES, LossContract, resolve_loss
from shapecheck.recipes import Recipes, ReExport
from shapecheck.request import Head, Request
from shapecheck.shapes import TensorMeta
from shapecheck.suppress import is_suppressed
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
        trace(result, loaded, request, checked_head(request))
    except ShapecheckError as exc:
        result.error = {"kind": exc.kind, "message": str(exc)}
        return result
    except TraceTimeout as stopped:
        result.error = {"kind": "timeout", "message": f"the forward pass did not finish within {stopped.seconds:g} s "
                        f"(stopped at {stopped.where}); if it is only slow, raise --timeout"}
        return result
    judge(result, loaded.adapter)
    rules(result, request)
    verify(result, loaded, request)
    if request.compute_patches:
        patch(result)
    return result


def traced(result: Result) -> Trace:
    """The trace of a result past the trace stage (every later stage runs only on a traced result)."""
    if result.trace is None:
        raise ValueError(f"{result.target} has no trace: the stages after `trace` need one")
    return result.trace


def checked_head(request: Request) -> Head:
    """The one head a check covers today: the model's main output with its loss and labels."""
    return request.heads[0]


def load(request: Request) -> targets.LoadedTarget:
    return request.loaded or targets.load(request.target, request.trust)


def trace(result: Result, loaded: targets.LoadedTarget, request: Request, head: Head) -> None:
    """Resolve the head's loss and labels, then trace the model (unless building it already failed)."""
    result.loss = _loss(loaded, head)
    result.labels = _labels(head, result.loss)
    if loaded.failed_trace is not None:
        traced = loaded.failed_trace
    else:
        progress.stage("trace")
        loaded.adapter.prepare()
        with deadline(request.timeout):
            traced = _traced(loaded, request, result.labels)
    result.trace = traced
    if head.loss and result.loss is None:
        table = KERAS_LOSSES if traced.framework == "keras" else TORCH_LOSSES
        traced.notes.append(f"loss `{head.loss}` has no contract in shapecheck (known: {', '.join(table)}): "
                            "the rules that compare the output and labels with the loss were skipped")
    if result.labels is not None and traced.framework == "keras" and len(traced.outputs) > 1:
        result.labels = labels_mod.for_first_output(result.labels, list(traced.outputs.values()))
        if result.labels is None:
            traced.notes.append("the labels hold one array per model output; they are not checked")


def judge(result: Result, adapter) -> None:
    """The framework's own verdict on the loss, the output and the labels (None when one of them is unknown)."""
    progress.stage("loss")
    output, loss, labels = traced(result).output, result.loss, result.labels
    if output is None or loss is None or labels is None or not labels.shape:
        result.loss_check = None
    else:
        result.loss_check = adapter.check_loss(output, labels, loss)


def rules(result: Result, request: Request) -> None:
    """The findings of the selected rules, with the configured severities, less the suppressed ones."""
    progress.stage("rules")
    trace = traced(result)
    recipes = recipes_for(trace.framework, trace.producer, trace.library)
    findings = engine.check(trace, result.loss, result.labels, recipes, request.select, request.ignore,
                            result.loss_check)
    severity: dict[str, Severity] = dict(request.severity)
    for finding in findings:
        finding.severity = severity.get(finding.rule, finding.severity)
    result.findings = [f for f in findings if not is_suppressed(f)]


def verify(result: Result, loaded: targets.LoadedTarget, request: Request) -> None:
    """Prove each recipe on a copy of the model by running this pipeline again on it (`Recheck`)."""
    if not request.verify_fixes:
        return
    try:
        with deadline(request.timeout):
            verification.verify(result, loaded, _example(loaded, request), Recheck(request), request.post)
    except TraceTimeout:
        traced(result).notes.append("verifying the fix recipes took longer than --timeout; they are unverified")


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
    on as `request` was."""

    request: Request

    def __call__(self, loaded: targets.LoadedTarget, labels: LabelInfo | None, loss: LossContract | None,
                 trace: Trace | None, inputs: list[TensorMeta] | None) -> tuple[Trace, list[Finding]]:
        request = self.request if inputs is None else \
            dataclasses.replace(self.request, inputs=tuple(inputs), example=None)
        result = Result(target=loaded.target, loss=loss, labels=labels)
        result.trace = trace or _traced(loaded, request, labels)
        judge(result, loaded.adapter)
        rules(result, request)
        return result.trace, result.findings


def recipes_for(framework: str, producer: str = "", library: str = "") -> Recipes | ReExport:
    if framework == "onnx":   # an exported graph: fix it in the framework it came from, then re-export
        from shapecheck.recipes.onnx import OnnxRecipes

        source = {"pytorch": "torch", "tf2onnx": "keras", "keras2onnx": "keras"}.get(producer)
        return ReExport(_framework_recipes(source), OnnxRecipes()) if source else OnnxRecipes()
    return _framework_recipes(framework, library)


def _framework_recipes(framework: str, library: str = "") -> Recipes:
    if framework == "torch":
        from shapecheck.recipes.torch import TorchRecipes
        return TorchRecipes(library)
    if framework == "keras":
        from shapecheck.recipes.keras import KerasRecipes
        return KerasRecipes(library)
    return Recipes()


def _loss(loaded: targets.LoadedTarget, head: Head) -> LossContract | None:
    if head.loss:
        try:
            return dataclasses.replace(resolve_loss(head.loss, loaded.adapter.FRAMEWORK, head.from_logits),
                                       options=tuple(head.loss_options))
        except ShapecheckError:
            return None   # a loss shapecheck has no contract for: the layer and batch rules still run
    return loaded.adapter.compiled_loss(loaded.model, head.from_logits) if loaded.model is not None else None


def _labels(head: Head, loss: LossContract | None) -> LabelInfo | None:
    """The head's labels; a shape without a dtype takes the one the loss reads."""
    if isinstance(head.labels, LabelSpec):
        return head.labels.info(loss.target_dtype if loss else "float32")
    return head.labels


def _example(loaded: targets.LoadedTarget, request: Request) -> ExampleInputs | None:
    """The input values to trace with: none when shapes are given, else the request's or the factory's."""
    return None if request.inputs else request.example or loaded.example


def _traced(loaded: targets.LoadedTarget, request: Request, labels: LabelInfo | None) -> Trace:
    """Trace with the given shapes, else the example values, else the model's declared input. Adapters that take
    values (PyTorch) get them and the user's code between model and loss; the others take their shapes."""
    adapter, example = loaded.adapter, _example(loaded, request)
    inputs = list(request.inputs) or (example.specs() if example else _declared_inputs(loaded, labels))
    if adapter.TAKES_VALUES:
        trace = adapter.trace(loaded.model, inputs, loaded.target, loaded.sites, example=example, post=request.post)
    else:
        trace = adapter.trace(loaded.model, inputs, loaded.target, loaded.sites)
    trace.notes[:0] = loaded.notes
    if example is not None and not adapter.TAKES_VALUES:
        trace.notes.append(f"input shapes and dtypes taken from {example.source}")
    return trace


def _declared_inputs(loaded: targets.LoadedTarget, labels: LabelInfo | None) -> list[TensorMeta]:
    batch = labels.shape[0] if labels is not None and labels.shape else DEFAULT_BATCH
    inputs = loaded.adapter.declared_inputs(loaded.model, batch)
    if not inputs:
        raise ShapecheckError(f"`{loaded.target}` declares no input shape: give one with --input, "
                              "e.g. --input 16,3,224,224")
    return inputs
