"""What a fix recipe changes, as data: the same description is printed, verified by re-checking, and patched into
the user's source.

An `Edit` says where it acts (`on`) and what it does (`op`, `args`). Edits on the labels, the loss and the input
specs are applied here, with no framework; edits on the model (`layer`, `output`, `input`, `model`) are applied by
the framework's adapter to an in-memory copy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

from shapecheck import labels as labels_mod
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract, resolve_loss
from shapecheck.shapes import TensorMeta

On = Literal["labels", "loss", "layer", "output", "input", "model"]
LabelOp = Literal["unsqueeze", "squeeze", "cast", "argmax", "shift", "divide", "remap", "positive", "unscale",
                  "first_channels", "reshape", "one_hot", "move_axis"]
ModelOp = Literal["resize", "set", "assign", "pool_before", "pool_after", "flatten_before", "flatten_per_sample",
                  "drop_op", "swap_op", "op_dim", "flatten_op", "permute_op", "permute", "swap", "cast",
                  "repeat_channels", "pad", "activation", "resize_to_labels", "modules", "add_classifier"]
Op = LabelOp | ModelOp | Literal["use"]   # `use`: the loss a recipe switches to
ON: tuple[On, ...] = get_args(On)


@dataclass(frozen=True)
class Edit:
    on: On
    op: Op                   # e.g. "unsqueeze", "use", "resize", "drop_op", "permute"
    args: tuple = ()
    layer: str = ""          # the layer a `layer` edit changes (its dotted path in the model)

    def __post_init__(self):
        assert self.on in ON, self.on

    def to_json(self) -> dict:
        return {"on": self.on, "op": self.op, "args": [_plain(a) for a in self.args], "layer": self.layer or None}


@dataclass(frozen=True)
class Recipe:
    """A fix recipe as a value: the code a finding shows and the edits that verification and patches apply, made by
    one `Recipes` call so that they cannot disagree. `insert` is the statement a patch adds after the user's line
    when the recipe replaces a layer a library built (`model.fc = nn.Linear(...)`); "" when it has none."""

    text: str
    edits: tuple[Edit, ...] = ()
    insert: str = ""

    def __str__(self) -> str:
        return self.text

    def commented(self, note: str | Recipe) -> Recipe:
        """This recipe with `note` as a trailing comment; a note that is a recipe (`labels.float()`) is applied too."""
        added = note.edits if isinstance(note, Recipe) else ()
        return replace(self, text=f"{self.text}  # {note}", edits=self.edits + added)

    def applied_as(self, edits: tuple[Edit, ...]) -> Recipe:
        """The same code, verified and patched as `edits`: the rule knows the exact op of the forward to change."""
        return replace(self, edits=edits)


# a label step as data: an op with its arguments, e.g. ("cast", "float32"), ("unsqueeze", 1), ("shift", -1);
# `view` (a reshape that only reads as code) is shown but not applied
LabelStep = tuple


class Unsupported(Exception):
    """An edit this framework (or this model) cannot apply in memory: the recipe stays unverified."""


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def labels_edit(*steps: LabelStep) -> tuple[Edit, ...]:
    """The steps as label edits; () when one of them is not applied (`view`), so the recipe stays unverified."""
    if not all(step[0] in _LABEL_OPS for step in steps):
        return ()
    return tuple(Edit("labels", step[0], tuple(step[1:])) for step in steps)


def apply_to_labels(labels: LabelInfo | None, edits: tuple[Edit, ...]) -> LabelInfo | None:
    """The labels as the recipe leaves them: values when the user gave values, else the shape and dtype."""
    steps = [edit for edit in edits if edit.on == "labels"]
    if labels is None or not steps:
        return labels
    import numpy as np

    if labels.array is not None and labels.dtype != "object":   # names (str) can be re-mapped to ids
        array = labels.array
        for step in steps:
            array = _LABEL_OPS[step.op](np, array, *step.args)
        return labels_mod.from_array(array, labels.source)
    dummy = np.zeros(labels.shape, dtype=_numpy_dtype(labels.dtype))   # shapes only: the values are unknown
    for step in steps:
        if step.op in ("shift", "remap", "positive", "unscale", "divide"):
            dummy = dummy.astype(_numpy_dtype(step.args[0])) if step.op == "positive" else dummy
            continue
        dummy = _LABEL_OPS[step.op](np, dummy, *step.args)
    return LabelInfo(TensorMeta(tuple(dummy.shape), labels_mod.normalize_dtype(str(dummy.dtype))), labels.source)


def _numpy_dtype(dtype: str) -> str:
    return {"bool": "bool"}.get(dtype, dtype if dtype not in ("str", "object") else "float32")


def _one_hot(np, array, classes):
    return np.eye(classes, dtype="float32")[array.astype("int64")]


_LABEL_OPS: dict[str, Callable[..., Any]] = {
    "unsqueeze": lambda np, a, axis: np.expand_dims(a, axis),
    "squeeze": lambda np, a, axis: np.squeeze(a, axis) if a.shape[axis] == 1 else a,
    "cast": lambda np, a, dtype: a.astype(dtype),
    "argmax": lambda np, a, axis: np.argmax(a, axis=axis).astype("int64"),
    "shift": lambda np, a, by: a + by,
    "divide": lambda np, a, by: (a / by).astype("float32"),
    "remap": lambda np, a: np.unique(a, return_inverse=True)[1].reshape(a.shape).astype("int64"),
    "positive": lambda np, a, dtype: (a > 0).astype(dtype),
    "unscale": lambda np, a, scale: np.rint(a * scale).astype("int64"),
    "first_channels": lambda np, a, count: a[:, :count],
    "reshape": lambda np, a, shape: a.reshape(shape),
    "one_hot": _one_hot,
    "move_axis": lambda np, a, source, destination: np.moveaxis(a, source, destination),
}


def apply_to_loss(loss: LossContract | None, edits: tuple[Edit, ...], framework: str) -> LossContract | None:
    """The loss a recipe switches to (`use`: name, from_logits, keyword arguments), else the loss as it was."""
    for edit in edits:
        if edit.on == "loss" and edit.op == "use":
            name, from_logits, options = edit.args
            contract = resolve_loss(name, framework, from_logits, source=loss.source if loss else "--loss")
            loss = replace(contract, options=options)
    return loss


def model_edits(edits: tuple[Edit, ...], inputs_applied: bool = False) -> tuple[Edit, ...]:
    """The edits an adapter applies to the model (input edits too, unless they were applied to the specs)."""
    skipped = ("labels", "loss", "input") if inputs_applied else ("labels", "loss")
    return tuple(edit for edit in edits if edit.on not in skipped)


def apply_to_inputs(specs: list[TensorMeta], edits: tuple[Edit, ...], channel_axis: int) -> list[TensorMeta] | None:
    """The input shapes after the recipe's data transforms (permute, cast, repeat the channel), or None when it has
    none or one that only the model's own code can apply."""
    steps = [edit for edit in edits if edit.on == "input"]
    if not steps or not specs:
        return None
    first = specs[0]
    shape, dtype = list(first.shape), first.dtype
    for step in steps:
        if step.op == "permute":
            shape = [shape[axis] for axis in step.args[0]]
        elif step.op == "swap":
            a, b = step.args
            shape[a], shape[b] = shape[b], shape[a]
        elif step.op == "cast":
            dtype = step.args[0]
        elif step.op == "repeat_channels" and len(shape) > 2:
            shape[channel_axis] = step.args[0]
        elif step.op == "pad":
            shape[-len(step.args[0]):] = [s + p for s, p in zip(shape[-len(step.args[0]):], step.args[0])]
        else:
            return None
    return [TensorMeta(tuple(shape), dtype), *specs[1:]]
