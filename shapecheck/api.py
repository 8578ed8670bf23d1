"""Check one target end to end: load -> trace -> rules -> findings. Used by the CLI and the pytest plugin."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from shapecheck import inputs as inputs_mod
from shapecheck import labels as labels_mod
from shapecheck import progress, targets
from shapecheck.config import Config, TargetConfig
from shapecheck.deadline import DEFAULT_SECONDS as DEFAULT_TIMEOUT
from shapecheck.deadline import TraceTimeout, deadline
from shapecheck.engine import Result, check
from shapecheck.errors import ShapecheckError
from shapecheck.labels import LabelInfo
from shapecheck.losses import KERAS_LOSSES, TORCH_LOSSES, LossContract, known_loss, resolve_loss, suggest_loss
from shapecheck.recipes import Recipes, ReExport
from shapecheck.shapes import TensorMeta, parse_spec
from shapecheck.suppress import is_suppressed
from shapecheck.verify import verify

DEFAULT_BATCH = 8   # the batch for a model that declares its input shape when neither --input nor labels say one


@dataclass
class Options:
    """What the user asked for, parsed and checked before any target is loaded."""

    inputs: list[TensorMeta] = field(default_factory=list)
    example: inputs_mod.ExampleInputs | None = None   # input values from --input-file
    loss: str | None = None
    from_logits: bool | None = None
    labels_spec: str | None = None
    labels_file: LabelInfo | None = None
    select: set[str] | None = None
    ignore: set[str] = field(default_factory=set)
    trust: bool = False
    severity: dict[str, str] = field(default_factory=dict)   # per-rule severity overrides from the config
    timeout: float | None = DEFAULT_TIMEOUT                 # seconds a trace may take (None or 0: no limit)
    verify_fixes: bool = True                               # prove recipes by re-checking and one training step
    loss_options: tuple = ()          # keyword arguments the loss is built with: (("ignore_index", 255),)
    post: object = None               # the user's code between the model and the loss (PyTorch), from `run`

    @classmethod
    def parse(cls, inputs=(), loss=None, labels=None, labels_file=None, from_logits=None, select=None,
              ignore=(), trust=False, input_file=None, timeout=DEFAULT_TIMEOUT) -> Options:
        if labels and labels_file:
            raise ShapecheckError("give either --labels or --labels-file, not both")
        if inputs and input_file:
            raise ShapecheckError("give either --input or --input-file, not both (the file's arrays have shapes)")
        if loss and not known_loss(loss) and suggest_loss(loss):   # a typo; other losses only skip the loss rules
            raise ShapecheckError(f"unknown loss `{loss}`; did you mean `{suggest_loss(loss)}`?")
        if timeout is not None and not timeout >= 0:
            raise ShapecheckError(f"invalid --timeout `{timeout}`: expected seconds, 0 for no limit")
        if labels:
            parse_spec(labels, what="--labels")   # a bad spec fails now, not after the first target
        parsed = [TensorMeta(*parse_spec(spec, "float32", what="--input")) for spec in inputs]
        example = inputs_mod.from_file(input_file) if input_file else None
        return cls(parsed, example, loss, from_logits, labels,
                   labels_mod.from_file(labels_file) if labels_file else None, set(select) if select else None,
                   set(ignore), trust, timeout=timeout)


def recipes_for(framework: str, producer: str = "", library: str = "") -> Recipes:
    if framework == "onnx":   # an exported graph: fix it in the framework it came from, then re-export
        from shapecheck.recipes.onnx import OnnxRecipes

        source = {"pytorch": "torch", "tf2onnx": "keras", "keras2onnx": "keras"}.get(producer)
        return ReExport(recipes_for(source), OnnxRecipes()) if source else OnnxRecipes()
    if framework == "torch":
        from shapecheck.recipes.torch import TorchRecipes
        return TorchRecipes(library)
    if framework == "keras":
        from shapecheck.recipes.keras import KerasRecipes
        return KerasRecipes(library)
    return Recipes()


def check_target(target: str, options: Options) -> Result:
    try:
        loaded = targets.load(target, options.trust)
    except ShapecheckError as exc:
        return Result(target=target, error={"kind": exc.kind, "message": str(exc)})
    return check_loaded(loaded, options)


def check_loaded(loaded: targets.LoadedTarget, options: Options) -> Result:
    """Trace a loaded model and run the rules on it."""
    result = Result(target=loaded.target)
    try:
        result.loss = _loss(loaded, options)
        result.labels = options.labels_file or _spec_labels(options.labels_spec, result.loss)
        if loaded.failed_trace is not None:
            result.trace = loaded.failed_trace
        else:
            progress.stage("trace")
            with deadline(options.timeout):
                result.trace = _trace(loaded, options, result.labels)
        if options.loss and result.loss is None:
            table = KERAS_LOSSES if result.trace.framework == "keras" else TORCH_LOSSES
            result.trace.notes.append(f"loss `{options.loss}` has no contract in shapecheck (known: {', '.join(table)}): "
                                      "the rules that compare the output and labels with the loss were skipped")
        if result.labels is not None and result.trace.framework == "keras" and len(result.trace.outputs) > 1:
            result.labels = labels_mod.for_first_output(result.labels, list(result.trace.outputs.values()))
            if result.labels is None:
                result.trace.notes.append("the labels hold one array per model output; they are not checked")
    except ShapecheckError as exc:
        result.error = {"kind": exc.kind, "message": str(exc)}
        return result
    except TraceTimeout as stopped:
        result.error = {"kind": "timeout", "message": f"the forward pass did not finish within {stopped.seconds:g} s "
                        f"(stopped at {stopped.where}); if it is only slow, raise --timeout"}
        return result
    diagnose(result, loaded.adapter, options)
    if options.verify_fixes:
        try:
            with deadline(options.timeout):
                example = None if options.inputs else options.example or loaded.example
                verify(result, loaded, example, lambda *args: _recheck(*args, options=options), options.post)
        except TraceTimeout:
            result.trace.notes.append("verifying the fix recipes took longer than --timeout; they are unverified")
    return result


def _recheck(loaded: targets.LoadedTarget, labels: LabelInfo | None, loss: LossContract | None, trace,
             inputs: list[TensorMeta] | None, options: Options):
    """Trace (unless the model and its inputs are unchanged: `trace` is given) and check as the first run did."""
    result = Result(target=loaded.target, loss=loss, labels=labels)
    if inputs is not None:
        options = dataclasses.replace(options, inputs=inputs, example=None)
    result.trace = trace or _trace(loaded, options, labels)
    diagnose(result, loaded.adapter, options)
    return result.trace, result.findings


def diagnose(result: Result, adapter, options: Options) -> Result:
    """Ask the framework's loss about the traced output and labels, then run the rules (the trace, the loss and
    the labels of `result` are set)."""
    progress.stage("loss")
    result.loss_check = _judge_loss(adapter, result)
    progress.stage("rules")
    recipes = recipes_for(result.trace.framework, result.trace.producer, result.trace.library)
    findings = check(result.trace, result.loss, result.labels, recipes, options.select, options.ignore,
                     result.loss_check)
    for finding in findings:
        finding.severity = options.severity.get(finding.rule, finding.severity)
    result.findings = [f for f in findings if not is_suppressed(f)]
    return result


def plan(target_args: list[str], cli: dict, config: Config) -> list[tuple[str, Options]]:
    """Which targets to check, each with its options: the CLI's flags override the target's configuration.

    A `.py` file without `:factory` stands for the configured targets defined in it (pre-commit passes changed
    files); one with none is skipped. No arguments at all means every configured target.
    """
    chosen: list[tuple[str, TargetConfig | None]] = []
    if not target_args:
        if not config.targets:
            raise ShapecheckError("no targets: give TARGET arguments or configure [[tool.shapecheck.targets]] in "
                                  "pyproject.toml")
        chosen = [(t.target, t) for t in config.targets]
    for arg in target_args:
        if Path(arg).name == "pyproject.toml":   # the configuration changed: every configured target
            chosen += [(t.target, t) for t in config.targets]
            continue
        configured = [t for t in config.targets if t.target == arg] or config.targets_in(arg)
        if configured:
            chosen += [(t.target, t) for t in configured]
        elif not (arg.endswith(".py") and ":" not in arg):
            chosen.append((arg, None))
    unique = {name: entry for name, entry in chosen}   # a target named twice (its file and pyproject) runs once
    return [(name, _options(cli, entry, config)) for name, entry in unique.items()]


def _options(cli: dict, entry: TargetConfig | None, config: Config) -> Options:
    entry = entry or TargetConfig("")
    use_cli_labels = bool(cli.get("labels") or cli.get("labels_file"))
    use_cli_inputs = bool(cli.get("inputs") or cli.get("input_file"))
    options = Options.parse(
        inputs=cli.get("inputs") if use_cli_inputs else entry.inputs,
        input_file=cli.get("input_file") if use_cli_inputs else entry.input_file,
        loss=cli.get("loss") or entry.loss,
        labels=cli.get("labels") if use_cli_labels else entry.labels,
        labels_file=cli.get("labels_file") if use_cli_labels else entry.labels_file,
        from_logits=cli.get("from_logits") if cli.get("from_logits") is not None else entry.from_logits,
        select=cli.get("select") or config.select,
        ignore=cli.get("ignore") or config.ignore,
        trust=bool(cli.get("trust")),
        timeout=cli["timeout"] if cli.get("timeout") is not None else config.timeout,
    )
    options.severity = dict(config.severity)
    options.verify_fixes = cli.get("verify_fixes", True)
    return options


def check_all(target_names: list[str], options: Options) -> list[Result]:
    return [check_target(t, options) for t in target_names]


def _loss(loaded, options: Options) -> LossContract | None:
    framework = loaded.adapter.FRAMEWORK
    if options.loss:
        try:
            return dataclasses.replace(resolve_loss(options.loss, framework, options.from_logits),
                                       options=tuple(options.loss_options))
        except ShapecheckError:
            return None   # a loss shapecheck has no contract for: the layer and batch rules still run
    compiled = getattr(loaded.adapter, "compiled_loss", None)
    return compiled(loaded.model, options.from_logits) if compiled and loaded.model is not None else None


def _trace(loaded: targets.LoadedTarget, options: Options, labels: LabelInfo | None):
    """Trace with the given shapes, else the example values (--input-file, or the factory's), else the model's
    declared input. Values reach the forward of PyTorch models; other frameworks take their shapes."""
    example = None if options.inputs else options.example or loaded.example
    inputs = options.inputs or (example.specs() if example else _declared_inputs(loaded, labels))
    post = {"post": options.post} if options.post is not None else {}
    if example is not None and loaded.adapter.FRAMEWORK == "torch":
        trace = loaded.adapter.trace(loaded.model, inputs, loaded.target, loaded.sites, example=example, **post)
    elif post:
        trace = loaded.adapter.trace(loaded.model, inputs, loaded.target, loaded.sites, **post)
    else:
        trace = loaded.adapter.trace(loaded.model, inputs, loaded.target, loaded.sites)
    trace.notes[:0] = loaded.notes
    if example is not None and loaded.adapter.FRAMEWORK != "torch":
        trace.notes.append(f"input shapes and dtypes taken from {example.source}")
    return trace


def _judge_loss(adapter, result: Result):
    """The framework's own verdict on the loss, the output and the labels (None when one of them is unknown)."""
    output, loss, labels = result.trace.output, result.loss, result.labels
    judge = getattr(adapter, "check_loss", None)
    if judge is None or output is None or loss is None or labels is None or not labels.shape:
        return None
    return judge(output, labels, loss)


def _spec_labels(spec: str | None, loss: LossContract | None) -> LabelInfo | None:
    return labels_mod.from_spec(spec, loss.target_dtype if loss else "float32") if spec else None


def _declared_inputs(loaded, labels: LabelInfo | None) -> list[TensorMeta]:
    declared = getattr(loaded.adapter, "declared_inputs", None)
    batch = labels.shape[0] if labels is not None and labels.shape else DEFAULT_BATCH
    inputs = declared(loaded.model, batch) if declared else None
    if not inputs:
        raise ShapecheckError(f"`{loaded.target}` declares no input shape: give one with --input, "
                              "e.g. --input 16,3,224,224")
    return inputs
