"""The Keras loss oracle: the `keras.losses` class `compile()` would use, called on small zero tensors.

The class (not the bare function) is what a compiled model calls: its wrapper squeezes or expands a trailing axis of
1 before the loss, so the shapes compared here are the ones training compares. Labels are the user's values when a
labels file gave them. An output too large to allocate cheaply is judged by the shape model instead.
"""

from __future__ import annotations

import math
import warnings

import keras
import numpy as np

from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.oracle import LossCheck, first_line, judge, simulate, squeeze_or_expand, void_marker
from shapecheck.shapes import TensorMeta

MAX_ELEMENTS = 1 << 24
CLASSES = {
    "binary_crossentropy": "BinaryCrossentropy", "binary_focal_crossentropy": "BinaryFocalCrossentropy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_focal_crossentropy": "CategoricalFocalCrossentropy",
    "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy", "mean_squared_error": "MeanSquaredError",
    "mean_absolute_error": "MeanAbsoluteError", "mean_squared_logarithmic_error": "MeanSquaredLogarithmicError",
    "huber": "Huber", "log_cosh": "LogCosh", "poisson": "Poisson", "kl_divergence": "KLDivergence",
}


def check_loss(output: TensorMeta, labels: LabelInfo, loss: LossContract) -> LossCheck | None:
    loss_class = getattr(keras.losses, CLASSES.get(loss.name, ""), None)
    if loss.framework != "keras" or loss_class is None:
        return None
    values = labels.array if labels.array is not None and labels.array.size <= MAX_ELEMENTS else None
    if math.prod(output.shape) > MAX_ELEMENTS or math.prod(labels.shape) > MAX_ELEMENTS:
        return simulate(output, labels.meta, values, loss)
    arguments = {"from_logits": loss.from_logits} if loss.from_logits is not None else {}
    marker = void_marker(values, output.shape[-1]) if loss.wants_class_indices and output.shape else None
    if marker is not None:
        arguments["ignore_class"] = marker
    function = loss_class(**arguments)

    def evaluate(out: TensorMeta, lab: TensorMeta, label_values):
        target_shape, output_shape = squeeze_or_expand(lab.shape, out.shape)
        compared = (output_shape, target_shape)
        try:
            target = label_values if label_values is not None else np.zeros(lab.shape, dtype=lab.dtype)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                function(target, np.zeros(out.shape, dtype=out.dtype))
        except Exception as exc:
            return f"{type(exc).__name__}: {first_line(exc)}", compared
        return None, compared

    suffix = f"(ignore_class={marker})" if marker is not None else ""
    return judge(evaluate, output, labels.meta, values, loss, f"`keras.losses.{loss_class.__name__}{suffix}`")
