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
        import difflib

        near = difflib.get_close_matches(name, [*DTYPES, *_DTYPE_ALIASES], n=1)
        hint = f"did you mean `{near[0]}`? " if near else ""
        shown = name if name.isprintable() else name.encode("unicode_escape").decode()
        raise ShapecheckError(f"unknown dtype `{shown}`; {hint}expected one of {', '.join(DTYPES)}")
    return name


MAX_DIM = 2**40   # larger than any tensor a machine holds: a typo, not a size


def parse_spec(text: str, default_dtype: str | None = None, what: str = "shape") -> tuple[tuple[int, ...], str | None]:
    """Parse `16,3,224,224`, `16x3x224x224`, `(16, 3)` or `8,128:int64` into (shape, dtype). Every size must be
    there and be a number: `2,,x` is an error, never read as `[2]`."""
    raw = text.strip()
    shown = raw if raw.isprintable() else raw.encode("unicode_escape").decode()   # one line, whatever was typed
    shape_part, colon, dtype_part = raw.partition(":")
    body = shape_part.strip()
    if len(body) >= 2 and (body[0], body[-1]) in (("(", ")"), ("[", "]")):
        body = body[1:-1].strip()
    sizes = re.split(r"\s*[,x×]\s*|\s+", body) if body else []
    bad = next((s for s in sizes if not re.fullmatch(r"[0-9]+", s)), None) if sizes else ""
    if bad is not None:
        problem = "a size is missing" if bad == "" else f"`{bad}` is not a size"
        raise ShapecheckError(f"invalid {what} `{shown}`: {problem}; expected sizes like `16,3,224,224` or `8,128:int64`")
    shape = check_sizes(tuple(int(s) for s in sizes), shown, what)
    if colon and not dtype_part.strip():
        raise ShapecheckError(f"invalid {what} `{shown}`: no dtype after `:` (e.g. `:int64`)")
    try:
        dtype = normalize_dtype(dtype_part) if dtype_part.strip() else default_dtype
    except ShapecheckError as exc:
        raise ShapecheckError(f"invalid {what} `{shown}`: {exc}") from None
    return shape, dtype


def check_sizes(shape: tuple[int, ...], shown: str, what: str = "shape") -> tuple[int, ...]:
    """`shape` when every size is one a tensor can have; `shown` is how the user wrote it."""
    if any(d < 1 or d > MAX_DIM for d in shape):
        raise ShapecheckError(f"invalid {what} `{shown}`: sizes must be between 1 and {MAX_DIM}")
    return shape


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
