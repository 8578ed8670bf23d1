"""The Python API: `shapecheck.check(model, input=..., loss=..., labels=...)` on objects a notebook, a test or a
training script already has. Inputs and labels may be shapes, real tensors or arrays, or a batch from a DataLoader;
the loss a name or the loss object itself (its `ignore_index`, `label_smoothing`, `reduction`, class weights, `from_logits` are read)."""

from __future__ import annotations

import dataclasses

from shapecheck import inputs as inputs_mod
from shapecheck import labels as labels_mod
from shapecheck import pipeline
from shapecheck.deadline import DEFAULT_SECONDS as DEFAULT_TIMEOUT
from shapecheck.errors import ShapecheckError
from shapecheck.labels import LabelInfo, LabelSpec
from shapecheck.losses import FUNCTIONAL_LOSSES, WEIGHT_OPTIONS
from shapecheck.report import Report
from shapecheck.request import Head, Request, checked_loss, checked_timeout, parse_input
from shapecheck.shapes import TensorMeta, check_sizes

# loss attributes that change what the loss accepts, read from a PyTorch loss object (with their defaults)
_TORCH_OPTIONS = {"ignore_index": -100, "label_smoothing": 0.0, "reduction": "mean"}


def check(model, input=None, loss=None, labels=None, *, batch=None, from_logits=None, select=None, ignore=(),
          verify_fixes: bool = True, timeout: float | None = DEFAULT_TIMEOUT, target: str | None = None,
          sites=None, post=None, loss_options: tuple | None = None, audit: bool = True) -> Report:
    """Check a model object. `input`: a shape (`(16, 3, 224, 224)`, `"16,3,224,224"`), several shapes, a tensor or
    array, a tuple/dict of them, or a DataLoader (its first batch); `batch`: an `(inputs, labels)` pair as a
    DataLoader yields it. `labels`: a shape or real values. `loss`: a name or a loss object. `audit=False` skips
    the training-signal audit (a real step on a tiny batch: SC401-SC404). `run`/`watch()` also
    pass where the script built each module (`sites`), what it did to the output before the loss (`post`) and the
    functional loss's keyword arguments (`loss_options`)."""
    request = request_for(model, input, loss, labels, batch=batch, from_logits=from_logits, select=select,
                          ignore=ignore, verify_fixes=verify_fixes, timeout=timeout, target=target, sites=sites,
                          post=post, loss_options=loss_options, audit=audit)
    return Report([pipeline.run(request)])


def request_for(model, input=None, loss=None, labels=None, *, batch=None, from_logits=None, select=None, ignore=(),
                verify_fixes: bool = True, timeout: float | None = DEFAULT_TIMEOUT, target: str | None = None,
                sites=None, post=None, loss_options: tuple | None = None, compute_patches: bool = False,
                audit: bool = True, loss_site=None) -> Request:
    """The request `check` runs, built from the objects given (`run` also asks for SARIF's patches)."""
    from shapecheck.targets import LoadedTarget, adapter_for

    if batch is None and _is_loader(input):
        batch = next(iter(input))
    if batch is not None:
        input, labels = _split_batch(batch, labels)
    adapter = adapter_for(model)
    loaded = LoadedTarget(target or type(model).__name__, model, adapter, sites=sites or {})
    return Request(loaded.target, loaded=loaded, inputs=_shapes(input), example=_example(input),
                   heads=_heads(loss, labels, from_logits, tuple(loss_options or ())),
                   select=frozenset(select) if select else None, ignore=frozenset(ignore),
                   timeout=checked_timeout(timeout), verify_fixes=verify_fixes, compute_patches=compute_patches,
                   audit=audit, post=post, loss_site=loss_site)


def _heads(loss, labels, from_logits, loss_options: tuple) -> tuple[Head, ...]:
    """One head, or one per output when the loss or the labels are dicts keyed by output name
    (`loss={"age": "mse", "gender": keras.losses.BinaryCrossentropy()}`, the dict `fit` takes as labels)."""
    if not isinstance(loss, dict) and not isinstance(labels, dict):
        return (_head(None, loss, labels, from_logits, loss_options),)
    if not isinstance(loss, dict):   # one loss for every output, labels per output: the pairing names them
        return (dataclasses.replace(_head(None, loss, None, from_logits, loss_options),
                                    labels={name: _labels(value) for name, value in labels.items()}),)
    outputs = list(dict.fromkeys([*loss, *(labels if isinstance(labels, dict) else {})]))
    return tuple(_head(name, loss.get(name), labels.get(name) if isinstance(labels, dict) else None, from_logits,
                       loss_options) for name in outputs)


def _head(output: str | None, loss, labels, from_logits, loss_options: tuple) -> Head:
    name, options_of_loss, logits = describe_loss(loss)
    return Head(output=output, loss=checked_loss(name), loss_options=options_of_loss + loss_options,
                from_logits=from_logits if from_logits is not None else logits, labels=_head_labels(labels))


def describe_loss(loss) -> tuple[str | None, tuple, bool | None]:
    """(name, options, from_logits) of a loss given as a name, a `torch.nn` loss, a Keras loss object or function,
    or a `torch.nn.functional` loss."""
    if loss is None or isinstance(loss, str):
        return loss, (), None
    if isinstance(loss, tuple):   # a functional loss as `run` saw it called: (name, keyword options)
        return loss[0], tuple(loss[1] or ()), None
    if hasattr(loss, "get_config"):   # a Keras loss object
        config = loss.get_config()
        options = (("ignore_class", config["ignore_class"]),) if config.get("ignore_class") is not None else ()
        return config.get("name") or type(loss).__name__, options, config.get("from_logits")
    function = getattr(loss, "__name__", "")
    if function in FUNCTIONAL_LOSSES:
        return FUNCTIONAL_LOSSES[function], (), None
    if function:   # a Keras loss function such as keras.losses.binary_crossentropy
        return function, (), None
    options = tuple((key, getattr(loss, key)) for key, default in _TORCH_OPTIONS.items()
                    if getattr(loss, key, default) != default)
    weights = tuple((key, value.detach().cpu()) for key in WEIGHT_OPTIONS
                    if hasattr(value := getattr(loss, key, None), "detach"))
    return type(loss).__name__, options + weights, None


def _is_loader(value) -> bool:
    return value is not None and hasattr(value, "__iter__") and hasattr(value, "batch_size") and \
        hasattr(value, "dataset")


def _split_batch(batch, labels):
    """A DataLoader's batch: `(inputs, labels)`, or a dict with a `labels` entry (Hugging Face)."""
    if isinstance(batch, dict):
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "label")}
        return inputs, labels if labels is not None else batch.get("labels", batch.get("label"))
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], labels if labels is not None else batch[1]
    raise ShapecheckError("a batch must be (inputs, labels) or a dict with a `labels` entry")


def _is_shape(value) -> bool:
    return isinstance(value, (tuple, list)) and bool(value) and all(isinstance(d, int) for d in value)


def _shapes(value) -> tuple[TensorMeta, ...]:
    """The input shapes given; () when the input is values (they give their own shapes)."""
    if value is None or _example(value) is not None:
        return ()
    if isinstance(value, str) or _is_shape(value):
        return (_shape(value),)
    return tuple(_shape(v) for v in value)


def _shape(value) -> TensorMeta:
    if isinstance(value, str):
        return parse_input(value)
    return TensorMeta(check_sizes(tuple(value), ",".join(map(str, value)), "--input"))


def _head_labels(value) -> LabelInfo | LabelSpec | None:
    """Labels as a shape (text or sizes) or as real values."""
    if value is None:
        return None
    if isinstance(value, str):
        return LabelSpec.parse(value, "--labels")
    if _is_shape(value):
        return LabelSpec(check_sizes(tuple(value), ",".join(map(str, value)), "--labels"))
    return _labels(value)


def _example(value):
    """Real input values as example inputs; None for shapes."""
    if value is None or isinstance(value, str) or _is_shape(value):
        return None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else [value]
    if not all(hasattr(item, "shape") and hasattr(item, "dtype") for item in items):
        return None
    return inputs_mod.from_value(_as_numpy_like(value), "the given inputs")


def _as_numpy_like(value):
    """Tensors stay tensors (PyTorch models read their values); TensorFlow tensors become NumPy arrays."""
    def convert(item):
        return item.numpy() if hasattr(item, "numpy") and not hasattr(item, "detach") else item
    if isinstance(value, dict):
        return {k: convert(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [convert(v) for v in value]
    return convert(value)


def _labels(value):
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    elif hasattr(value, "numpy") and not isinstance(value, np.ndarray):
        value = value.numpy()
    return labels_mod.from_array(np.asarray(value), "labels")


