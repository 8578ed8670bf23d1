"""Tensor specs (`16,3,224,224:int64`) and how shapes print (`[16, 3, 224, 224]`)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from shapecheck.errors import ShapecheckError

DTYPES = (
    "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool",
)
_DTYPE_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "long": "int64", "int": "int64"}


@dataclass(frozen=True)
class TensorMeta:
    """The shape and dtype of one tensor; dtype is a numpy-style name (`float32`, `int64`, `str`)."""

    shape: tuple[int, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.shape)

    def to_json(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}


def is_float(dtype: str) -> bool:
    return dtype.startswith(("float", "bfloat"))


def is_int(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def normalize_dtype(name: str) -> str:
    name = name.strip().lower().removeprefix("torch.")
    name = _DTYPE_ALIASES.get(name, name)
    if name not in DTYPES:
        raise ShapecheckError(f"unknown dtype `{name}`; expected one of {', '.join(DTYPES)}")
    return name


def parse_spec(text: str, default_dtype: str | None = None) -> tuple[tuple[int, ...], str | None]:
    """Parse `16,3,224,224`, `16x3x224x224` or `8,128:int64` into (shape, dtype)."""
    raw = text.strip()
    shape_part, _, dtype_part = raw.partition(":")
    dims = [d for d in re.split(r"[,x×\s]+", shape_part.strip().strip("()[]")) if d]
    if not dims or not all(d.isdigit() for d in dims):
        raise ShapecheckError(f"invalid shape `{raw}`: expected sizes like `16,3,224,224` or `8,128:int64`")
    shape = tuple(int(d) for d in dims)
    if any(d == 0 for d in shape):
        raise ShapecheckError(f"invalid shape `{raw}`: sizes must be positive")
    dtype = normalize_dtype(dtype_part) if dtype_part else default_dtype
    return shape, dtype


def fmt(shape) -> str:
    """`[16, 3, 224, 224]`, the way every message prints a shape; an unknown size (-1) prints as None."""
    return "[" + ", ".join("None" if d == -1 else str(d) for d in shape) + "]"


def batch_axis(at_batch: tuple, at_next: tuple) -> int | None:
    """The one axis whose size changes when the batch grows by one (shapes traced at N and N + 1), if exactly one
    does. Found this way, not assumed to be axis 0: after a transpose the batch is elsewhere, and that is fine."""
    if len(at_batch) != len(at_next):
        return None
    changed = [axis for axis, (a, b) in enumerate(zip(at_batch, at_next)) if a != b]
    return changed[0] if len(changed) == 1 else None
