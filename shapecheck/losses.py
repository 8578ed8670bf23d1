"""Loss contracts: what each loss expects of the model output and of the labels, with no framework imported."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shapecheck.errors import ShapecheckError


@dataclass(frozen=True)
class LossContract:
    name: str                # the name users write, e.g. `BCEWithLogitsLoss`
    family: str              # "binary" | "categorical" | "regression"
    input_space: str         # "logits" | "probabilities" | "log_probabilities" | "any"
    target: str              # "same_shape" | "class_indices" (class indices or per-class probabilities)
    framework: str = "torch"
    class_axis: int = 1      # where the class axis of the output is (1 in PyTorch, -1 in Keras)

    @property
    def wants_class_indices(self) -> bool:
        return self.target == "class_indices"

    @property
    def target_dtype(self) -> str:
        return "int64" if self.wants_class_indices else "float32"


TORCH_LOSSES = {
    "BCELoss": LossContract("BCELoss", "binary", "probabilities", "same_shape"),
    "BCEWithLogitsLoss": LossContract("BCEWithLogitsLoss", "binary", "logits", "same_shape"),
    "CrossEntropyLoss": LossContract("CrossEntropyLoss", "categorical", "logits", "class_indices"),
    "NLLLoss": LossContract("NLLLoss", "categorical", "log_probabilities", "class_indices"),
    "MSELoss": LossContract("MSELoss", "regression", "any", "same_shape"),
    "L1Loss": LossContract("L1Loss", "regression", "any", "same_shape"),
    "SmoothL1Loss": LossContract("SmoothL1Loss", "regression", "any", "same_shape"),
    "HuberLoss": LossContract("HuberLoss", "regression", "any", "same_shape"),
}

_ALIASES = {
    "bce": "BCELoss", "binarycrossentropy": "BCELoss",
    "bcewithlogits": "BCEWithLogitsLoss", "bcelogits": "BCEWithLogitsLoss",
    "crossentropy": "CrossEntropyLoss", "ce": "CrossEntropyLoss", "categoricalcrossentropy": "CrossEntropyLoss",
    "nll": "NLLLoss", "negativeloglikelihood": "NLLLoss",
    "mse": "MSELoss", "meansquarederror": "MSELoss", "l2": "MSELoss",
    "l1": "L1Loss", "mae": "L1Loss", "meanabsoluteerror": "L1Loss",
    "smoothl1": "SmoothL1Loss", "huber": "HuberLoss",
}


def _key(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return key[:-4] if key.endswith("loss") and len(key) > 4 else key


def resolve_loss(name: str) -> LossContract:
    """`BCEWithLogitsLoss`, `bce-with-logits`, `bce_with_logits`, `nn.MSELoss` all resolve; anything else is an error."""
    cleaned = name.strip().split(".")[-1].removesuffix("()")
    key = _key(cleaned)
    for canonical in TORCH_LOSSES:
        if _key(canonical) == key:
            return TORCH_LOSSES[canonical]
    if key in _ALIASES:
        return TORCH_LOSSES[_ALIASES[key]]
    raise ShapecheckError(f"unknown loss `{name}`; expected one of {', '.join(TORCH_LOSSES)}")
