"""The PyTorch loss oracle: the real `torch.nn` loss on small CPU tensors shaped like the traced output and labels.

Real tensors, not meta ones: on the meta device a loss skips its dtype checks (int32 class ids pass), so only a real
call says what training would say. The output is zeros; the labels are the user's values when a labels file gave
them, else zeros (a valid class id). An output too large to allocate cheaply is judged by the shape model instead.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import torch
from torch import nn

from shapecheck.labels import LabelInfo
from shapecheck.losses import WEIGHT_OPTIONS, LossContract
from shapecheck.oracle import LossCheck, first_line, judge, simulate, void_marker
from shapecheck.shapes import TensorMeta

MAX_ELEMENTS = 1 << 24   # 64 MB of float32 per tensor


def check_loss(output: TensorMeta, labels: LabelInfo, loss: LossContract) -> LossCheck | None:
    loss_class = getattr(nn, loss.name, None)
    if loss.framework != "torch" or loss_class is None:
        return None
    values = labels.array if labels.array is not None and labels.array.size <= MAX_ELEMENTS else None
    if math.prod(output.shape) > MAX_ELEMENTS or math.prod(labels.shape) > MAX_ELEMENTS:
        return simulate(output, labels.meta, values, loss)
    marker = loss.option("ignore_index")
    if marker is None and loss.wants_class_indices:
        marker = void_marker(values, output.shape[1] if len(output.shape) >= 2 else None)
    options = {**dict(loss.options), **({"ignore_index": marker} if marker is not None else {})}
    name = f"`torch.nn.{loss.name}" + (f"(ignore_index={marker})" if marker is not None else "") + "`"
    verdict = judge(_evaluation(loss_class(**options)), output, labels.meta, values, loss, name)
    weights = {key: value for key, value in options.items() if key in WEIGHT_OPTIONS}
    if verdict.status == "raises" and weights:   # the same output and labels pass without the class weights
        plain = loss_class(**{key: value for key, value in options.items() if key not in weights})
        if _evaluation(plain)(output, labels.meta, values)[0] is None:
            return dataclasses.replace(verdict, aspect="options")
    return verdict


def _evaluation(function):
    def evaluate(out: TensorMeta, lab: TensorMeta, label_values):
        compared = (out.shape, lab.shape)
        if label_values is None and not isinstance(getattr(torch, lab.dtype, None), torch.dtype):
            return f"labels of dtype {lab.dtype} cannot become a tensor", compared
        try:
            prediction = torch.zeros(out.shape, dtype=getattr(torch, out.dtype))
            target = (torch.as_tensor(label_values) if label_values is not None
                      else torch.zeros(lab.shape, dtype=getattr(torch, lab.dtype)))
            with warnings.catch_warnings():   # the broadcast warning is the verdict's to report
                warnings.simplefilter("ignore")
                function(prediction, target)
        except Exception as exc:
            return f"{type(exc).__name__}: {first_line(exc)}", compared
        return None, compared
    return evaluate
