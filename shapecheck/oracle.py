"""The loss oracle: ask the framework's own loss whether it accepts the traced output and the labels.

Rules explain mismatches; they do not decide whether one exists. The framework does: each adapter evaluates the
declared loss on the output's shape and dtype and the labels (their real values when a labels file is given) with its
own loss code, and this module turns what happened into a `LossCheck`. A raise is classified by re-running the loss
with labels of the dtype the loss wants (and then with valid values), so the verdict says whether the labels' shape,
dtype or values were rejected without reading the framework's message. Element-wise losses that accept labels of
another shape broadcast them, which no framework reports: that is a rejection too.

For an ONNX graph no framework is imported: `simulate` models PyTorch's and Keras' loss shape rules in plain Python
(the loss sweep in the tests holds it to the real frameworks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shapecheck.losses import LossContract
from shapecheck.shapes import TensorMeta, fmt, is_float, is_int

# An evaluation runs the loss once: (output, labels, label values or None) -> (error or None, the shapes compared).
# The compared shapes are the output's and the labels' as the loss saw them (after Keras' squeeze/expand).
Evaluation = Callable[[TensorMeta, TensorMeta, object], tuple[str | None, tuple[tuple, tuple]]]


@dataclass(frozen=True)
class LossCheck:
    """What the framework's loss made of the output and labels."""

    status: str                  # "ok" | "raises" | "broadcasts"
    aspect: str = ""             # for a rejection: "shape", "dtype" or "values" of the labels, or the loss's "options"
    message: str = ""            # the framework's own message (first line), or the broadcast it performs
    evaluated_by: str = ""       # "`torch.nn.CrossEntropyLoss`", "`keras.losses.CategoricalCrossentropy`", ...
    broadcast_shape: tuple | None = None
    seen_output: tuple | None = None   # the output's shape as the loss saw it (Keras squeezes or expands an axis of 1)

    @property
    def rejected(self) -> bool:
        return self.status != "ok"

    def to_json(self) -> dict:
        data = {"status": self.status, "evaluated_by": self.evaluated_by}
        if self.rejected:
            data.update(aspect=self.aspect, message=self.message)
        return data


def judge(evaluate: Evaluation, output: TensorMeta, labels: TensorMeta, values, loss: LossContract,
          evaluated_by: str) -> LossCheck:
    """Run the loss on the real labels; classify a raise by re-running with a valid dtype, then valid values."""
    error, (compared_out, compared_labels) = evaluate(output, labels, values)
    if error is None:
        return _broadcast_check(compared_out, compared_labels, loss, evaluated_by)
    wanted = TensorMeta(labels.shape, loss.target_dtype)
    aspect = "shape"
    if evaluate(output, wanted, None)[0] is None:
        aspect = "values" if values is not None and evaluate(output, labels, None)[0] is None else "dtype"
    return LossCheck("raises", aspect, error, evaluated_by, seen_output=compared_out)


def _broadcast_check(out: tuple, lab: tuple, loss: LossContract, evaluated_by: str) -> LossCheck:
    if loss.wants_class_indices or out == lab:
        return LossCheck("ok", evaluated_by=evaluated_by, seen_output=out)
    merged = broadcast_shape(out, lab)
    message = (f"the output {fmt(out)} and the labels {fmt(lab)} broadcast to {fmt(merged)} without an error, "
               "so predictions are compared with the wrong labels")
    return LossCheck("broadcasts", "shape", message, evaluated_by, merged, seen_output=out)


def broadcast_shape(a: tuple, b: tuple) -> tuple | None:
    """The shape two tensors broadcast to, or None when they cannot."""
    result = []
    for x, y in zip(reversed((1,) * (len(b) - len(a)) + tuple(a)), reversed((1,) * (len(a) - len(b)) + tuple(b))):
        if x != y and 1 not in (x, y):
            return None
        result.append(max(x, y))
    return tuple(reversed(result))


# --- a framework-free model of the loss shape rules, for exported graphs -------------------------------------------

def simulate(output: TensorMeta, labels: TensorMeta, values, loss: LossContract) -> LossCheck:
    """The loss's verdict in the semantics of the framework the contract belongs to, computed on shapes only."""
    evaluate = _simulate_keras if loss.framework == "keras" else _simulate_torch
    semantics = "Keras" if loss.framework == "keras" else "PyTorch"
    return judge(lambda o, t, v: evaluate(o, t, v, loss), output, labels, values, loss,
                 f"{semantics}'s `{loss.name}` (as shapecheck models it, without importing {semantics})")


def _simulate_torch(out: TensorMeta, lab: TensorMeta, values, loss: LossContract):
    o, t = out.shape, lab.shape
    compared = (o, t)
    if loss.wants_class_indices:
        if loss.accepts_probabilities and is_float(lab.dtype) and t == o:
            return None, compared
        if lab.dtype not in ("int64", "uint8") or (loss.name == "NLLLoss" and lab.dtype != "int64"):
            return f"expected target dtype to be Long, but got {lab.dtype}", compared
        expected = () if len(o) == 1 else o[:1] + o[2:]
        if len(o) == 2 and len(t) != 1:
            return "0D or 1D target tensor expected, multi-target not supported", compared
        if t != expected:
            return f"Expected target size {list(expected)}, got {list(t)}", compared
        classes = o[1] if len(o) >= 2 else o[0]
        ignored = void_marker(values, classes) or -100   # PyTorch's default ignore_index, or the void marker
        if values is not None and _out_of_range(values, classes, ignored):
            return f"Target is out of bounds for {classes} classes", compared
        return None, compared
    if loss.name in ("BCELoss", "BCEWithLogitsLoss") and t != o:
        return f"Target size ({list(t)}) must be the same as input size ({list(o)})", compared
    if not is_float(lab.dtype) and loss.name in ("BCELoss", "BCEWithLogitsLoss"):
        return f"result type Float can't be cast to the desired output type {lab.dtype}", compared
    if broadcast_shape(o, t) is None:
        return f"The size of tensor a ({list(o)}) must match the size of tensor b ({list(t)})", compared
    return None, compared


def _simulate_keras(out: TensorMeta, lab: TensorMeta, values, loss: LossContract):
    t, o = squeeze_or_expand(lab.shape, out.shape)
    compared = (o, t)
    if loss.wants_class_indices:
        if len(t) == len(o) and t and t[-1] == 1:
            t = t[:-1]
        if t != o[:-1]:
            return ("Arguments `target` and `output` must have the same shape up until the last dimension: "
                    f"target.shape={fmt(lab.shape)}, output.shape={fmt(out.shape)}"), compared
        if values is not None and _out_of_range(values, o[-1], void_marker(values, o[-1])):
            return f"Received a label value outside the valid range of [0, {o[-1]})", compared
        return None, compared
    if loss.family in ("binary", "categorical") and loss.name != "kl_divergence":
        if len(t) != len(o):
            return (f"Arguments `target` and `output` must have the same rank (ndim). Received: target.shape="
                    f"{fmt(lab.shape)}, output.shape={fmt(out.shape)}"), compared
        if t != o:
            return (f"Arguments `target` and `output` must have the same shape. Received: target.shape="
                    f"{fmt(lab.shape)}, output.shape={fmt(out.shape)}"), compared
        return None, compared
    if broadcast_shape(o, t) is None:
        return f"Incompatible shapes: {fmt(o)} vs. {fmt(t)}", compared
    return None, compared


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message: frameworks append context and tracebacks below it."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def squeeze_or_expand(labels: tuple, output: tuple) -> tuple[tuple, tuple]:
    """Keras' loss wrapper: when the ranks differ by one and the longer tensor ends in 1, drop that axis, or, when
    the shorter one has rank 1, give it a trailing axis of 1 instead."""
    if len(labels) == len(output) + 1 and labels[-1] == 1:
        return (labels, output + (1,)) if len(output) == 1 else (labels[:-1], output)
    if len(output) == len(labels) + 1 and output[-1] == 1:
        return (labels + (1,), output) if len(labels) == 1 else (labels, output[:-1])
    return labels, output


VOID = 255   # VOC's void label: segmentation losses are built with ignore_index=255 as a rule


def void_marker(values, classes: int | None) -> int | None:
    """255 when it is the only label value outside 0..C-1: the convention for pixels to skip. shapecheck cannot
    see the loss object's `ignore_index`, so it assumes this one (SC110 still warns about it)."""
    import numpy as np

    if values is None or not classes:
        return None
    array = np.asarray(values)
    if array.dtype.kind not in "iuf" or not (array == VOID).any():
        return None
    rest = array[array != VOID]
    return VOID if rest.size and rest.min() >= 0 and rest.max() < classes and VOID >= classes else None


def _out_of_range(values, classes: int, ignored: int | None = None) -> bool:
    import numpy as np

    array = np.asarray(values)
    if not (is_int(str(array.dtype)) or is_float(str(array.dtype))):
        return False
    array = array[array != ignored] if ignored is not None else array
    return bool(array.size and (array.min() < 0 or array.max() >= classes))
