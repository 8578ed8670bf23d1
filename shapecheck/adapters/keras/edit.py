"""Apply a recipe's edits to a Keras model rebuilt from its config (fresh weights, the user's are never touched),
and run one real training step on the copy.

Layer edits change the config of the named layer (`units`, `filters`, `activation`, `axis`); a Sequential model
can also get layers inserted. Input and output edits wrap the rebuilt model in a functional model.
"""

from __future__ import annotations

import copy
import warnings

import keras
import numpy as np
from keras.src.saving.serialization_lib import SafeModeScope

from shapecheck.adapters.keras.loss import CLASSES
from shapecheck.edits import Edit, Unsupported
from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.shapes import TensorMeta

STEP_BATCH = 2
MAX_PARAMETERS = 100_000_000   # as for PyTorch models: a step on two samples stays within seconds
_SIZE_KEYS = {"out": ("units", "filters")}


def edited(model, edits: tuple[Edit, ...], labels: LabelInfo | None):
    """A copy of `model`, rebuilt from its config with `edits` applied; Unsupported when that is not possible."""
    try:
        config = copy.deepcopy(model.get_config())
    except Exception as exc:   # a subclassed model without get_config
        raise Unsupported(f"the model has no config to rebuild it from ({type(exc).__name__})") from exc
    wraps = []
    for edit in edits:
        if edit.on == "layer":
            _edit_config(config, edit, model)
        elif edit.on in ("output", "input", "model"):
            wraps.append(edit)
        else:
            raise Unsupported(f"{edit.on} edit `{edit.op}`")
    for entry in _layer_configs(config):   # shapes recorded at build time no longer hold after an edit
        entry.pop("build_config", None)
    try:
        # a Lambda in memory came from the user's own code or a file they trusted: rebuilding it runs nothing new
        with SafeModeScope(False):
            rebuilt = type(model).from_config(config)
    except Exception as exc:
        raise Unsupported(f"the edited config does not rebuild: {type(exc).__name__}: {str(exc).strip()[:200]}") from exc
    return _wrapped(rebuilt, wraps) if wraps else rebuilt


def _layer_configs(config: dict) -> list[dict]:
    return config.get("layers", [])


def _find(config: dict, name: str) -> tuple[int, dict]:
    short = name.rpartition(".")[2]
    for index, entry in enumerate(_layer_configs(config)):
        if entry.get("config", {}).get("name") == short:
            return index, entry
    raise Unsupported(f"no layer `{name}` in the model config")


def _edit_config(config: dict, edit: Edit, model):
    index, entry = _find(config, edit.layer)
    layer_config = entry["config"]
    if edit.op == "resize":
        (key, size), = edit.args
        if key == "in":
            return   # Keras layers size their input when built: rebuilding is the fix
        field = next((k for k in _SIZE_KEYS["out"] if k in layer_config), None)
        if field is None:
            raise Unsupported(f"cannot resize a {entry.get('class_name')}")
        layer_config[field] = size
    elif edit.op == "set":
        layer_config.update(dict(edit.args))
    elif edit.op in ("drop_op", "swap_op", "op_dim"):
        _edit_activation(config, index, entry, edit)
    elif edit.op in ("pool_before", "flatten_before"):
        pooling = f"GlobalAveragePooling{min(max((edit.args or (4,))[0] - 2, 1), 3)}D"   # by the map's rank
        _insert_before(config, index, entry, pooling if edit.op == "pool_before" else "Flatten")
    else:
        raise Unsupported(f"layer edit `{edit.op}` on {entry.get('class_name')}")


def _insert_before(config: dict, index: int, entry: dict, class_name: str):
    """A new layer between `entry` and what fed it: in a Sequential list, or re-wired in a functional graph."""
    name = f"shapecheck_{class_name.lower()}"
    inserted = {"module": "keras.layers", "class_name": class_name, "config": {"name": name}, "registered_name": None}
    if "inbound_nodes" in entry:   # functional: the new layer takes the inputs, the old one takes the new one
        inserted["name"] = name
        inserted["inbound_nodes"] = copy.deepcopy(entry["inbound_nodes"])
        [node] = entry["inbound_nodes"] if len(entry["inbound_nodes"]) == 1 else [None]
        if node is None or len(node["args"]) != 1:
            raise Unsupported("a layer called on several inputs")
        tensor = copy.deepcopy(node["args"][0])
        tensor["config"]["keras_history"] = [name, 0, 0]
        entry["inbound_nodes"] = [{"args": [tensor], "kwargs": node.get("kwargs", {})}]
    config["layers"].insert(index, inserted)


def _edit_activation(config: dict, index: int, entry: dict, edit: Edit):
    layer_config, kind = entry["config"], entry.get("class_name")
    if edit.op == "op_dim":
        if "axis" not in layer_config:
            raise Unsupported(f"{kind} has no axis to change")
        layer_config["axis"] = edit.args[2]
    elif "activation" in layer_config:   # Dense(..., activation="softmax") or Activation("softmax")
        layer_config["activation"] = "linear" if edit.op == "drop_op" else edit.args[2]
    elif kind == "Softmax":
        entry["class_name"] = "Activation"
        entry["config"] = {"name": layer_config["name"],
                           "activation": "linear" if edit.op == "drop_op" else edit.args[2]}
    else:
        raise Unsupported(f"cannot change the activation of a {kind}")


def _wrapped(model, edits: list[Edit]):
    inputs = [keras.Input(shape=tuple(t.shape[1:]), dtype=t.dtype) for t in model.inputs]
    first = inputs[0]
    for edit in (e for e in edits if e.on == "input"):
        if edit.op == "permute":
            first = keras.layers.Permute(tuple(edit.args[0][1:]))(first)
        elif edit.op == "cast":
            first = keras.ops.cast(first, edit.args[0])
        else:
            raise Unsupported(f"input edit `{edit.op}`")
    output = model([first, *inputs[1:]] if len(inputs) > 1 else first)
    for edit in (e for e in edits if e.on != "input"):
        if edit.op == "activation":
            output = keras.layers.Activation(edit.args[0])(output)
        elif edit.op == "permute":
            output = keras.layers.Permute(tuple(edit.args[0][1:]))(output)
        elif edit.op == "add_classifier":
            output = keras.layers.Dense(edit.args[1], activation=edit.args[2])(output)
        else:
            raise Unsupported(f"{edit.on} edit `{edit.op}`")
    return keras.Model(inputs, output)


def train_step(model, specs: list[TensorMeta], example, labels: LabelInfo, loss: LossContract, post=None) -> str:
    """One real `train_on_batch` of the rebuilt copy on two samples with the compiled loss (`post`, PyTorch code
    between a model and its loss, does not apply)."""
    loss_class = getattr(keras.losses, CLASSES.get(loss.name, ""), None)
    if loss_class is None:
        raise Unsupported(f"no keras.losses class for `{loss.name}`")
    if model.count_params() > MAX_PARAMETERS:
        raise Unsupported(f"{model.count_params() / 1e6:.0f}M parameters is too large for a real step here")
    batch = min(STEP_BATCH, specs[0].shape[0]) if specs and specs[0].shape else STEP_BATCH
    inputs = [np.random.default_rng(0).standard_normal((batch, *s.shape[1:])).astype(s.dtype)
              if s.dtype.startswith("float") else np.zeros((batch, *s.shape[1:]), dtype=s.dtype) for s in specs]
    values = labels.array if labels.array is not None else np.zeros(labels.shape, dtype=labels.dtype)
    if values.ndim and specs and values.shape[0] == specs[0].shape[0]:
        values = values[:batch]
    arguments = {"from_logits": loss.from_logits} if loss.from_logits is not None else {}
    arguments.update(dict(loss.options))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.compile(optimizer="sgd", loss=loss_class(**arguments))
        value = model.train_on_batch(inputs if len(inputs) > 1 else inputs[0], values)
    value = float(np.ravel(value)[0])
    if not np.isfinite(value):
        raise RuntimeError(f"the loss is {value}")
    return f"one training step on {batch} samples: loss {value:.4g}"
