"""What a fix recipe changes, as data: the same description is printed, verified by re-checking, and patched into
the user's source.

An `Edit` says where it acts (`on`) and what it does (`op`, `args`). Edits on the labels, the loss and the input
specs are applied here, with no framework; edits on the model (`layer`, `output`, `input`, `model`) are applied by
the framework's adapter to an in-memory copy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from shapecheck import labels as labels_mod
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract, resolve_loss
from shapecheck.shapes import TensorMeta

ON = ("labels", "loss", "layer", "output", "input", "model")


@dataclass(frozen=True)
class Edit:
    on: str                  # one of ON
    op: str                  # e.g. "unsqueeze", "use", "resize", "drop_op", "permute"
    args: tuple = ()
    layer: str = ""          # the layer a `layer` edit changes (its dotted path in the model)

    def __post_init__(self):
        assert self.on in ON, self.on

    def to_json(self) -> dict:
        return {"on": self.on, "op": self.op, "args": [_plain(a) for a in self.args], "layer": self.layer or None}


class Unsupported(Exception):
    """An edit this framework (or this model) cannot apply in memory: the recipe stays unverified."""


def _plain(value):
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


def labels_edit(*steps: tuple) -> tuple[Edit, ...]:
    return tuple(Edit("labels", step[0], tuple(step[1:])) for step in steps)


_CHAIN = re.compile(r"\.(\w+)\(([^()]*)\)|\s*([-+])\s*(\d+)$|\s*/\s*(\d+(?:\.\d*)?)$|\[:, :(\d+)\]")
_CASTS = {"float": "float32", "double": "float64", "long": "int64", "half": "float16", "int": "int32"}


def parse_label_chain(expression: str) -> tuple[Edit, ...]:
    """`.float().unsqueeze(1)`, `.squeeze(1)`, ` - 1`, `[:, :1]` as label edits; () when any part is not known."""
    steps, position = [], 0
    for match in _CHAIN.finditer(expression):
        if match.start() != position:
            return ()
        position = match.end()
        method, argument, sign, shift, divisor, channels = match.groups()
        if shift:
            steps.append(("shift", int(shift) if sign == "+" else -int(shift)))
        elif divisor:
            steps.append(("divide", float(divisor)))
        elif channels:
            steps.append(("first_channels", int(channels)))
        elif method in _CASTS and not argument:
            steps.append(("cast", _CASTS[method]))
        elif method in ("unsqueeze", "squeeze", "argmax") and re.fullmatch(r"-?\d+", argument.strip()):
            steps.append((method, int(argument)))
        elif method == "reshape":
            steps.append(("reshape", tuple(int(d) for d in argument.replace(" ", "").strip(",").split(","))))
        else:
            return ()
    return labels_edit(*steps) if position == len(expression) and steps else ()


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


_LABEL_OPS = {
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
