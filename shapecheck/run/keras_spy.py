"""Keras hooks for `shapecheck run` / `watch()`: the first batch `fit` or `train_on_batch` receives is the training
step to check, with the compiled loss. The batch is taken without losing it: a generator gets it back in front."""

from __future__ import annotations

import functools
import itertools

import keras
import numpy as np

from shapecheck.adapters.keras.tracer import KERAS_DIR
from shapecheck.adapters.sources import user_frame

DEFAULT_BATCH = 32   # what fit uses when arrays come without batch_size


def install(state):
    from shapecheck.adapters.keras import recording_sites

    fit, on_batch = keras.Model.fit, keras.Model.train_on_batch
    recording = recording_sites()
    sites = recording.__enter__()

    @functools.wraps(fit)
    def checked_fit(self, x=None, y=None, *args, **kwargs):
        if state.waiting:
            x, y, first = _first_batch(x, y, kwargs.get("batch_size") or DEFAULT_BATCH)
            _check(state, self, *first, sites)
        return fit(self, x, y, *args, **kwargs)

    @functools.wraps(on_batch)
    def checked_on_batch(self, x, y=None, *args, **kwargs):
        if state.waiting:
            _check(state, self, x, y, sites)
        return on_batch(self, x, y, *args, **kwargs)

    keras.Model.fit, keras.Model.train_on_batch = checked_fit, checked_on_batch

    def undo():
        keras.Model.fit, keras.Model.train_on_batch = fit, on_batch
        recording.__exit__(None, None, None)
    return undo


def _first_batch(x, y, batch_size: int):
    """(x, y, (inputs, labels) of the first batch): arrays are sliced; a `tf.data` dataset, a `PyDataset` or a
    generator yields its first batch (a generator is given back with that batch in front)."""
    if y is not None or _is_array(x):
        return x, y, (_head(x, batch_size), _head(y, batch_size) if y is not None else None)
    if hasattr(x, "__getitem__") and hasattr(x, "__len__") and not isinstance(x, dict):   # PyDataset / Sequence
        return x, y, _pair(x[0])
    if hasattr(x, "element_spec"):   # tf.data
        return x, y, _pair(next(iter(x)))
    if hasattr(x, "__next__"):
        first = next(x)
        return itertools.chain([first], x), y, _pair(first)
    return x, y, (x, y)


def _is_array(value) -> bool:
    return hasattr(value, "shape") or (isinstance(value, (list, tuple, dict)) and value and
                                       all(hasattr(v, "shape") for v in (value.values() if isinstance(value, dict)
                                                                         else value)))


def _head(value, count: int):
    if isinstance(value, dict):
        return {k: v[:count] for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [v[:count] for v in value]
    return value[:count]


def _pair(batch):
    if isinstance(batch, (tuple, list)) and len(batch) >= 2:
        return batch[0], batch[1]
    return batch, None


def _numpy(value):
    if isinstance(value, dict):
        return {k: _numpy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_numpy(v) for v in value]
    return np.asarray(value) if value is not None else None


def _per_output(model, labels):
    """`fit(x, [age, gender])` pairs by position: the same labels by output name, as a dict pairs them."""
    names = list(getattr(model, "output_names", None) or [])
    if isinstance(labels, list) and len(labels) > 1 and len(labels) == len(names):
        return dict(zip(names, labels))
    return labels


def _check(state, model, x, y, sites):
    where = user_frame((KERAS_DIR,), depth=3)
    inputs = _numpy(x)
    labels = _per_output(model, _numpy(y))
    report = state.check(model, input=inputs if not isinstance(inputs, list) or len(inputs) > 1 else inputs[0],
                         labels=labels if not isinstance(labels, list) or len(labels) > 1 else labels[0],
                         target=f"{model.name} (trained at {where})" if where else model.name, sites=sites,
                         loss_site=where)
    state.checked(report, str(where) if where else "")
