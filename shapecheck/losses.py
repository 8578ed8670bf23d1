"""Loss contracts: what each loss expects of the model output and of the labels, with no framework imported."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from shapecheck.errors import ShapecheckError

# torch.nn.functional names -> the module losses shapecheck has contracts for (the Python API and `run` read them)
FUNCTIONAL_LOSSES = {
    "cross_entropy": "CrossEntropyLoss", "nll_loss": "NLLLoss", "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss", "mse_loss": "MSELoss", "l1_loss": "L1Loss",
    "smooth_l1_loss": "SmoothL1Loss", "huber_loss": "HuberLoss", "kl_div": "KLDivLoss",
}


@dataclass(frozen=True)
class LossContract:
    name: str                # the name users write, e.g. `BCEWithLogitsLoss`
    family: str              # "binary" | "categorical" | "regression"
    input_space: str         # "logits" | "probabilities" | "log_probabilities" | "any"
    target: str              # "same_shape" | "class_indices" | "one_hot" (labels shaped like the output)
    framework: str = "torch"
    class_axis: int = 1      # where the class axis of the output is (1 in PyTorch, -1 in Keras)
    accepts_probabilities: bool = False   # a class-index loss that also takes per-class float targets
    lenient: bool = False    # Keras: a trailing axis of 1 is squeezed away and label dtypes are cast
    from_logits: bool | None = None       # Keras losses: the `from_logits` the contract was built for
    source: str = "--loss"   # where the loss came from, for the output
    options: tuple = ()      # keyword arguments the loss is built with, as (name, value) pairs: ignore_index=255

    def option(self, name: str, default=None):
        return dict(self.options).get(name, default)

    @property
    def wants_class_indices(self) -> bool:
        return self.target == "class_indices"

    @property
    def target_dtype(self) -> str:
        return "int64" if self.wants_class_indices else "float32"

    @property
    def label(self) -> str:
        """The loss as messages name it: `binary_crossentropy(from_logits=True)`."""
        return self.name if self.from_logits is None else f"{self.name}(from_logits={self.from_logits})"


# per-class tensors a PyTorch loss holds (`CrossEntropyLoss(weight=...)`, `BCEWithLogitsLoss(pos_weight=...)`): the
# loss rejects them when they were sized for another class count than the output's
WEIGHT_OPTIONS = ("weight", "pos_weight")


def _torch(name, family, space, target, **extra):
    return LossContract(name, family, space, target, **extra)


TORCH_LOSSES = {
    "BCELoss": _torch("BCELoss", "binary", "probabilities", "same_shape"),
    "BCEWithLogitsLoss": _torch("BCEWithLogitsLoss", "binary", "logits", "same_shape"),
    "CrossEntropyLoss": _torch("CrossEntropyLoss", "categorical", "logits", "class_indices", accepts_probabilities=True),
    "NLLLoss": _torch("NLLLoss", "categorical", "log_probabilities", "class_indices"),
    "MSELoss": _torch("MSELoss", "regression", "any", "same_shape"),
    "L1Loss": _torch("L1Loss", "regression", "any", "same_shape"),
    "SmoothL1Loss": _torch("SmoothL1Loss", "regression", "any", "same_shape"),
    "HuberLoss": _torch("HuberLoss", "regression", "any", "same_shape"),
    "PoissonNLLLoss": _torch("PoissonNLLLoss", "regression", "any", "same_shape"),
    "MultiLabelSoftMarginLoss": _torch("MultiLabelSoftMarginLoss", "binary", "logits", "same_shape"),
    # target: a probability distribution shaped like the output, which holds log-probabilities
    "KLDivLoss": _torch("KLDivLoss", "categorical", "log_probabilities", "one_hot"),
}

# Keras losses: (family, target); the input space follows from_logits.
KERAS_LOSSES = {
    "binary_crossentropy": ("binary", "same_shape"),
    "binary_focal_crossentropy": ("binary", "same_shape"),
    "categorical_crossentropy": ("categorical", "one_hot"),
    "categorical_focal_crossentropy": ("categorical", "one_hot"),
    "sparse_categorical_crossentropy": ("categorical", "class_indices"),
    "mean_squared_error": ("regression", "same_shape"),
    "mean_absolute_error": ("regression", "same_shape"),
    "mean_squared_logarithmic_error": ("regression", "same_shape"),
    "huber": ("regression", "same_shape"),
    "log_cosh": ("regression", "same_shape"),
    "poisson": ("regression", "same_shape"),
    "kl_divergence": ("categorical", "one_hot"),   # probabilities against a target distribution
}
_PROBABILITY_ONLY = {"kl_divergence"}
# TensorFlow's raw ops always take logits.
_TF_LOGIT_LOSSES = {
    "softmax_cross_entropy_with_logits": "categorical_crossentropy",
    "sigmoid_cross_entropy_with_logits": "binary_crossentropy",
    "sparse_softmax_cross_entropy_with_logits": "sparse_categorical_crossentropy",
}

_TORCH_ALIASES = {
    "bce": "BCELoss", "binarycrossentropy": "BCELoss",
    "bcewithlogits": "BCEWithLogitsLoss", "bcelogits": "BCEWithLogitsLoss",
    "crossentropy": "CrossEntropyLoss", "ce": "CrossEntropyLoss", "categoricalcrossentropy": "CrossEntropyLoss",
    "nll": "NLLLoss", "negativeloglikelihood": "NLLLoss",
    "mse": "MSELoss", "meansquarederror": "MSELoss", "l2": "MSELoss",
    "l1": "L1Loss", "mae": "L1Loss", "meanabsoluteerror": "L1Loss",
    "smoothl1": "SmoothL1Loss", "huber": "HuberLoss",
    "sparsecategoricalcrossentropy": "CrossEntropyLoss", "kldiv": "KLDivLoss", "kldivergence": "KLDivLoss",
    "poisson": "PoissonNLLLoss", "multilabelsoftmargin": "MultiLabelSoftMarginLoss",
}
_KERAS_ALIASES = {
    "bce": "binary_crossentropy", "cce": "categorical_crossentropy", "scce": "sparse_categorical_crossentropy",
    "mse": "mean_squared_error", "mae": "mean_absolute_error", "msle": "mean_squared_logarithmic_error",
    "logcosh": "log_cosh", "binaryfocal": "binary_focal_crossentropy",
    "kld": "kl_divergence", "kldiv": "kl_divergence", "kullbackleiblerdivergence": "kl_divergence",
    "crossentropy": "sparse_categorical_crossentropy", "ce": "sparse_categorical_crossentropy",  # PyTorch's name
    "bcewithlogits": "binary_crossentropy", "l1": "mean_absolute_error", "l2": "mean_squared_error",
}


def _key(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return key[:-4] if key.endswith("loss") and len(key) > 4 else key


def _clean(name: str) -> str:
    return name.strip().split(".")[-1].removesuffix("()")


def resolve_loss(name: str, framework: str = "torch", from_logits: bool | None = None,
                 source: str = "--loss") -> LossContract:
    """Resolve a loss name for a framework: `BCEWithLogitsLoss`, `bce-with-logits`, `binary_crossentropy`, ..."""
    if framework == "onnx":   # an exported graph is trained with either framework's losses
        contract = _torch_loss(name) or _keras(name, from_logits)
    else:
        contract = _keras(name, from_logits) if framework == "keras" else _torch_loss(name)
    if contract is None:
        table = KERAS_LOSSES if framework == "keras" else TORCH_LOSSES
        raise ShapecheckError(f"unknown {framework} loss `{name}`; expected one of {', '.join(table)}")
    return replace(contract, source=source)


def suggest_loss(name: str) -> str | None:
    """The known loss a mistyped name is closest to (`BCEWithLogitLoss` -> `BCEWithLogitsLoss`), if one is close."""
    import difflib

    names = {_key(n): n for n in (*TORCH_LOSSES, *KERAS_LOSSES)}
    match = difflib.get_close_matches(_key(_clean(name)), list(names), n=1, cutoff=0.85)
    if not match:   # a typo in the `Loss` suffix itself (`MSELos`): compare whole names
        whole = {n.lower(): n for n in (*TORCH_LOSSES, *KERAS_LOSSES)}
        found = difflib.get_close_matches(name.lower(), list(whole), n=1, cutoff=0.85)
        return whole[found[0]] if found else None
    return names[match[0]]


def known_loss(name: str) -> bool:
    """Whether any framework knows the name (checked before targets are loaded)."""
    return _torch_loss(name) is not None or _keras(name, None) is not None


def _torch_loss(name: str) -> LossContract | None:
    key = _key(_clean(name))
    canonical = next((c for c in TORCH_LOSSES if _key(c) == key), _TORCH_ALIASES.get(key))
    return TORCH_LOSSES.get(canonical) if canonical else None


def _keras(name: str, from_logits: bool | None) -> LossContract | None:
    cleaned = _clean(name)
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", cleaned).lower().replace("-", "_")
    if snake in _TF_LOGIT_LOSSES:
        snake, from_logits = _TF_LOGIT_LOSSES[snake], True
    key = _key(snake)
    canonical = next((c for c in KERAS_LOSSES if _key(c) == key), _KERAS_ALIASES.get(key))
    if canonical is None:
        return None
    family, target = KERAS_LOSSES[canonical]
    if family == "regression":
        space, from_logits = "any", None
    elif canonical in _PROBABILITY_ONLY:   # no `from_logits` argument: always probabilities
        space, from_logits = "probabilities", None
    else:
        from_logits = bool(from_logits)
        space = "logits" if from_logits else "probabilities"
    return LossContract(canonical, family, space, target, framework="keras", class_axis=-1, lenient=True,
                        from_logits=from_logits)
