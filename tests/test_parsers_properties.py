"""Property-based tests of what users type: shape/dtype specs and the pyproject configuration. Any input gives a
value that round-trips or a ShapecheckError; never another exception, never a silently shortened shape."""

from __future__ import annotations

import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from shapecheck import config
from shapecheck.errors import ShapecheckError
from shapecheck.shapes import DTYPES, MAX_DIM, parse_spec

sizes = st.lists(st.integers(1, 10**6), min_size=1, max_size=6)
separators = st.sampled_from([",", "x", ", ", " x ", "×", " "])


@given(sizes, separators, st.sampled_from([None, *DTYPES]))
def test_a_written_shape_reads_back_as_written(shape, separator, dtype):
    text = separator.join(map(str, shape)) + (f":{dtype}" if dtype else "")
    assert parse_spec(text, "float32") == (tuple(shape), dtype or "float32")


@given(sizes, st.sampled_from(["()", "[]"]))
def test_brackets_around_a_shape_are_allowed(shape, brackets):
    assert parse_spec(brackets[0] + ",".join(map(str, shape)) + brackets[1])[0] == tuple(shape)


@settings(max_examples=500)
@given(st.text(alphabet=st.sampled_from(list("0123456789,x: ()[]-.abfilnot×²\t")), max_size=24) | st.text(max_size=24))
def test_any_text_is_a_shape_of_all_its_sizes_or_a_clear_error(text):
    try:
        shape, dtype = parse_spec(text, "float32")
    except ShapecheckError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    written = re.findall(r"[0-9]+", text.partition(":")[0])
    assert shape == tuple(int(s) for s in written)   # every size the user wrote, none dropped
    assert all(1 <= d <= MAX_DIM for d in shape) and dtype in DTYPES


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**9) | st.floats(allow_nan=True) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
KEYS = sorted(config.TOP_KEYS | {"unknown"})
TARGET_KEYS = sorted(config.TARGET_KEYS | {"bogus"})


def _toml(value) -> str:
    """A TOML literal for a generated value (TOML has no null: None is written as false). JSON's string escapes
    are TOML's too."""
    if value is None or isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if value != value else {float("inf"): "inf", float("-inf"): "-inf"}.get(value, repr(value))
    if isinstance(value, (int, str)):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), toml_values, max_size=3),
       st.lists(st.dictionaries(st.sampled_from(TARGET_KEYS), toml_values, max_size=4), max_size=2))
def test_any_configuration_is_read_or_refused_with_the_key_and_line(tmp_path_factory, top, targets):
    path = tmp_path_factory.mktemp("config") / "pyproject.toml"
    lines = ["[tool.shapecheck]", *(f"{key} = {_toml(value)}" for key, value in top.items() if key != "targets")]
    for entry in targets:
        lines += ["[[tool.shapecheck.targets]]", *(f'"{key}" = {_toml(value)}' for key, value in entry.items())]
    path.write_text("\n".join(lines) + "\n")
    try:
        loaded = config.load(path)
    except ShapecheckError as exc:
        assert str(exc).startswith(str(path)) and "\n" not in str(exc).strip()
        return
    assert all(isinstance(t.target, str) for t in loaded.targets)
    assert loaded.timeout >= 0
