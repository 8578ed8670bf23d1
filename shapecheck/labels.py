"""The label tensor: its shape and dtype from `--labels`, or its real values from `--labels-file`.

Only summary statistics of the values reach the rules, so the rule engine never sees an array library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shapecheck.errors import ShapecheckError
from shapecheck.shapes import TensorMeta, normalize_dtype, parse_spec

MAX_LISTED_VALUES = 32


@dataclass
class RowStats:
    """0/1 labels read as rows along one axis (the class axis): how many rows are empty, one-hot, multi-hot."""

    rows: int
    zero_rows: int
    multi_hot_rows: int
    first_column_empty: bool            # class 0 is never set: ids 1..C one-hot encoded into C+1 columns


@dataclass
class LabelStats:
    minimum: float
    maximum: float
    integral: bool                      # every value is a whole number
    distinct: list[float] = field(default_factory=list)   # sorted, only when there are few
    distinct_count: int = 0
    count: int = 0                      # how many values (samples, or pixels for masks)
    non_finite: int = 0                 # NaN or infinite values
    # for labels of rank >= 2 with values in {0, 1}: rows along axis 1 (PyTorch's class axis) and -1 (Keras')
    rows_by_axis: dict[int, RowStats] = field(default_factory=dict)
    channels_identical: bool = False    # axis 1 has several channels holding the same values (an RGB-loaded mask)

    def rows(self, axis: int) -> RowStats | None:
        return self.rows_by_axis.get(axis)


@dataclass
class LabelInfo:
    meta: TensorMeta
    source: str                         # "spec" or the file it was read from
    stats: LabelStats | None = None
    per_output: int = 0                 # > 0: these are the first of that many label arrays, one per model output
    array: Any = field(default=None, repr=False, compare=False)   # kept to split per-output stacks; rules never read it

    @property
    def shape(self) -> tuple[int, ...]:
        return self.meta.shape

    @property
    def dtype(self) -> str:
        return self.meta.dtype

    def to_json(self) -> dict:
        data: dict[str, object] = {"shape": list(self.shape), "dtype": self.dtype}
        if self.stats:
            data["values"] = {"min": self.stats.minimum, "max": self.stats.maximum,
                              "distinct": self.stats.distinct or None}
        return data


@dataclass(frozen=True)
class LabelSpec:
    """Labels given as a shape (`--labels 16,1:float32`); without a dtype, they take the loss's label dtype."""

    shape: tuple[int, ...]
    dtype: str | None = None

    @classmethod
    def parse(cls, text: str, what: str = "shape") -> LabelSpec:
        return cls(*parse_spec(text, what=what))

    def info(self, default_dtype: str) -> LabelInfo:
        return LabelInfo(TensorMeta(self.shape, self.dtype or default_dtype), "spec")


def from_spec(text: str, default_dtype: str) -> LabelInfo:
    return LabelSpec.parse(text).info(default_dtype)


def from_file(path_text: str) -> LabelInfo | dict[str, LabelInfo]:
    """The labels in a file; an .npz of several arrays none of which is named `labels` holds one array per model
    output, by output name."""
    path = Path(path_text)
    if not path.is_file():
        raise ShapecheckError(f"labels file `{path_text}` does not exist")
    array = _load_array(path)
    if isinstance(array, dict):
        return {name: from_array(value, f"{path}[{name}]") for name, value in array.items()}
    return from_array(array, str(path))


def from_array(array, source: str) -> LabelInfo:
    """Summarise a numpy array (or anything `numpy.asarray` takes)."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype.kind in "US" or (array.dtype.kind == "O" and all(isinstance(v, str) for v in array.flat)):
        return LabelInfo(TensorMeta(array.shape, "str"), source)
    if array.dtype.kind == "O":   # e.g. `DataFrame.values` of mixed columns: numbers boxed as Python objects
        return LabelInfo(TensorMeta(array.shape, "object"), source)
    dtype = "bool" if array.dtype.kind == "b" else normalize_dtype(str(array.dtype))
    return LabelInfo(TensorMeta(tuple(int(d) for d in array.shape), dtype), source,
                     _stats(array) if array.size else None, array=array)


def without_value(labels: LabelInfo, value: float) -> LabelInfo:
    """The labels a loss reads when it skips `value` (`ignore_index`): statistics of the other values."""
    if labels.array is None:
        return labels
    kept = labels.array[labels.array != value]
    return LabelInfo(labels.meta, labels.source, _stats(kept) if kept.size else None, array=labels.array)


def split_per_output(labels: LabelInfo, names: list[str]) -> dict[str, LabelInfo] | None:
    """Labels saved as one array per output of a model with several: a stack [K, N, ...] (same shapes) gives each
    output its own; None for anything else (one array for K outputs is what SC120 reports)."""
    shape, count = labels.shape, len(names)
    if len(shape) < 2 or shape[0] != count or labels.array is None or labels.dtype == "object":
        return None
    split = {}
    for name, array in zip(names, labels.array):
        split[name] = from_array(array, labels.source)
        split[name].per_output = count
    return split


def one_array_per_output(labels: LabelInfo, count: int) -> bool:
    """An object array of K arrays (outputs with different shapes), whose values are never unpickled."""
    return labels.dtype == "object" and labels.shape == (count,)


def _stats(array) -> LabelStats:
    import numpy as np

    values = array.astype(np.float64)
    finite = np.isfinite(values)
    non_finite = int(values.size - finite.sum())
    if non_finite:   # NaN/inf are reported by themselves; the other statistics describe the rest
        values = values[finite] if finite.any() else np.zeros(1)
    uniques = np.unique(values)
    stats = LabelStats(
        minimum=float(values.min()), maximum=float(values.max()),
        integral=bool(np.all(np.mod(values, 1) == 0)),
        distinct=[float(v) for v in uniques] if len(uniques) <= MAX_LISTED_VALUES else [],
        distinct_count=int(len(uniques)),
        count=int(array.size),
        non_finite=non_finite,
    )
    if non_finite:
        return stats   # the per-row and per-channel views need the whole array
    if array.ndim >= 2 and set(uniques.tolist()) <= {0.0, 1.0}:
        for axis in (1, -1):
            row_sums = values.sum(axis=axis)
            first = np.take(values, 0, axis=axis)
            stats.rows_by_axis[axis] = RowStats(int(row_sums.size), int((row_sums == 0).sum()),
                                                int((row_sums > 1).sum()), bool(not first.any()))
    if array.ndim >= 3 and array.shape[1] in (3, 4):
        stats.channels_identical = bool(all(np.array_equal(values[:, 0], values[:, c]) for c in range(1, array.shape[1])))
    return stats


def _load_array(path: Path):
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            import numpy as np
            shape = _object_array_shape(path)
            # an array of Python objects keeps its shape and dtype but no values: a pickle is never loaded
            return np.load(path, allow_pickle=False) if shape is None else np.empty(shape, dtype=object)
        if suffix == ".npz":
            import numpy as np
            with np.load(path, allow_pickle=False) as archive:
                return _pick(dict(archive), path)
        if suffix in (".pt", ".pth"):
            import torch
            loaded = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(loaded, dict):
                loaded = _pick(loaded, path)
            if isinstance(loaded, dict):
                return {name: _tensor_values(value, path) for name, value in loaded.items()}
            return _tensor_values(loaded, path)
    except ShapecheckError:
        raise
    except Exception as exc:  # a corrupt or foreign file: say so in one line
        raise ShapecheckError(f"cannot read labels file `{path}`: {type(exc).__name__}: {_first_line(exc)}") from exc
    raise ShapecheckError(f"labels file `{path}` must be .npy, .npz or .pt")


def _object_array_shape(path: Path) -> tuple[int, ...] | None:
    """The shape of an object array (a pickle), read from the .npy header without unpickling anything."""
    import numpy as np

    with open(path, "rb") as file:
        version = np.lib.format.read_magic(file)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(file)
    return shape if dtype.hasobject else None


def _tensor_values(value, path: Path):
    if not hasattr(value, "numpy"):
        raise ShapecheckError(f"labels file `{path}` holds a {type(value).__name__}, not a tensor")
    return value.detach().cpu().numpy()


def _pick(arrays: dict, path: Path):
    if len(arrays) == 1:
        return next(iter(arrays.values()))
    for key in ("labels", "label", "y", "targets", "target"):
        if key in arrays:
            return arrays[key]
    return arrays   # one array per output, by output name


def _first_line(exc: BaseException) -> str:
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
