"""Input values a forward pass needs: sequence lengths for `pack_padded_sequence`, masks, index tensors.

They come from `--input-file` (`.npz` or `.pt`) or from a factory that returns `(model, example_inputs)`. The arrays
are kept as given (NumPy arrays or tensors); the tracer feeds their values to the forward and resizes them along the
batch axis when it needs another batch size. No framework is imported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from shapecheck.errors import ShapecheckError
from shapecheck.shapes import TensorMeta, normalize_dtype

_POSITIONAL = re.compile(r"arr_(\d+)")   # the names `np.savez(path, a, b)` gives positional arrays


@dataclass
class ExampleInputs:
    positional: list = field(default_factory=list)
    keyword: dict = field(default_factory=dict)
    source: str = ""

    @property
    def arrays(self) -> list:
        return [*self.positional, *self.keyword.values()]

    @property
    def batch(self) -> int:
        return next(int(array.shape[0]) for array in self.arrays if len(array.shape))

    def specs(self) -> list[TensorMeta]:
        return [TensorMeta(tuple(int(d) for d in array.shape), _dtype(array)) for array in self.arrays]


def from_value(value, source: str) -> ExampleInputs:
    """A tensor or array, a tuple/list of them (positional), or a dict of them (keyword arguments)."""
    if isinstance(value, dict):
        return _checked(ExampleInputs(keyword={str(k): v for k, v in value.items()}, source=source))
    if isinstance(value, (tuple, list)):
        return _checked(ExampleInputs(positional=list(value), source=source))
    return _checked(ExampleInputs(positional=[value], source=source))


def _checked(inputs: ExampleInputs) -> ExampleInputs:
    source = inputs.source
    bad = [type(a).__name__ for a in inputs.arrays if not hasattr(a, "shape") or not hasattr(a, "dtype")]
    if bad or not inputs.arrays:
        raise ShapecheckError(f"example inputs from {source} must be arrays or tensors (a tuple of them for several "
                              f"inputs, a dict for keyword inputs), got {', '.join(bad) or 'nothing'}")
    if not any(len(a.shape) for a in inputs.arrays):
        raise ShapecheckError(f"example inputs from {source} have no batch axis: every array is a scalar")
    return inputs


def from_file(path_text: str) -> ExampleInputs:
    """`.npz`: `arr_0`, `arr_1`, ... are positional (what `np.savez(path, x, lengths)` writes), other names are
    keyword arguments. `.pt`: a tensor, a tuple/list or a dict, read with `weights_only=True`."""
    path = Path(path_text)
    if not path.is_file():
        raise ShapecheckError(f"input file `{path_text}` does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npz":
            import numpy as np

            with np.load(path, allow_pickle=False) as archive:
                arrays = dict(archive)
            numbered = sorted((int(m.group(1)), name) for name in arrays if (m := _POSITIONAL.fullmatch(name)))
            keyword = {name: array for name, array in arrays.items() if not _POSITIONAL.fullmatch(name)}
            return _checked(ExampleInputs([arrays[name] for _, name in numbered], keyword, str(path)))
        if suffix in (".pt", ".pth"):
            import torch

            return from_value(torch.load(path, map_location="cpu", weights_only=True), str(path))
    except ShapecheckError:
        raise
    except Exception as exc:
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        raise ShapecheckError(f"cannot read input file `{path}`: {type(exc).__name__}: {first}") from exc
    raise ShapecheckError(f"input file `{path}` must be .npz or .pt")


def _dtype(array) -> str:
    name = str(array.dtype).removeprefix("torch.")
    try:
        return normalize_dtype(name)
    except ShapecheckError:
        return name
