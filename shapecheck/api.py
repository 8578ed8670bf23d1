"""Check one target end to end: load -> trace -> rules -> findings. Used by the CLI and the pytest plugin."""

from __future__ import annotations

from shapecheck import labels as labels_mod
from shapecheck import targets
from shapecheck.engine import Result, check
from shapecheck.errors import ShapecheckError
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract, resolve_loss
from shapecheck.recipes import Recipes
from shapecheck.shapes import TensorMeta, parse_spec


def parse_inputs(specs: list[str]) -> list[TensorMeta]:
    parsed = [parse_spec(spec, "float32") for spec in specs]
    return [TensorMeta(shape, dtype) for shape, dtype in parsed]


def parse_labels(spec: str | None, file: str | None, loss: LossContract | None) -> LabelInfo | None:
    if spec and file:
        raise ShapecheckError("give either --labels or --labels-file, not both")
    if file:
        return labels_mod.from_file(file)
    if spec:
        return labels_mod.from_spec(spec, loss.target_dtype if loss else "float32")
    return None


def recipes_for(framework: str) -> Recipes:
    if framework == "torch":
        from shapecheck.recipes.torch import TorchRecipes
        return TorchRecipes()
    return Recipes()


def check_target(target: str, inputs: list[TensorMeta], loss: LossContract | None, labels: LabelInfo | None,
                 select: set[str] | None = None, ignore: set[str] = frozenset()) -> Result:
    result = Result(target=target, loss=loss, labels=labels)
    try:
        loaded = targets.load(target)
        if not inputs:
            raise ShapecheckError(f"`{target}` declares no input shape: give one with --input, e.g. --input 16,3,224,224")
        result.trace = loaded.adapter.trace(loaded.model, inputs, target, loaded.sites)
    except ShapecheckError as exc:
        result.error = {"kind": exc.kind, "message": str(exc)}
        return result
    result.findings = check(result.trace, loss, labels, recipes_for(result.trace.framework), select, ignore)
    return result


def check_all(target_names: list[str], input_specs: list[str], loss_name: str | None, labels_spec: str | None,
              labels_file: str | None, select=None, ignore=frozenset()) -> list[Result]:
    """Parse every option first (a bad option stops everything), then check each target in this process."""
    inputs = parse_inputs(input_specs)
    loss = resolve_loss(loss_name) if loss_name else None
    labels = parse_labels(labels_spec, labels_file, loss)
    return [check_target(t, inputs, loss, labels, select, ignore) for t in target_names]
