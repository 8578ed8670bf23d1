"""Read an ONNX file without its weights: the protobuf is walked on the wire and the payload of every large
initializer is left out, so memory stays near the size of the graph structure, not twice the file.

The file is memory-mapped and payload bytes are skipped by their length prefix: the pages holding the weights are
never read. Shapes, names, dtypes and small tensors (the constants shape arithmetic needs) are kept byte for byte.
"""

from __future__ import annotations

import math
import mmap

_MODEL_GRAPH = 7          # ModelProto.graph
_GRAPH_INITIALIZER = 5    # GraphProto.initializer
_TENSOR_DIMS = 1          # TensorProto.dims
# TensorProto's value fields: float_data, int32_data, string_data, int64_data, raw_data, double_data, uint64_data
_TENSOR_PAYLOADS = {4, 5, 6, 7, 9, 10, 11}
_LENGTH_DELIMITED = 2


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def read_structure(path: str, keep_elements: int) -> bytes:
    """The serialized ModelProto at `path` with the payloads of initializers larger than `keep_elements` dropped."""
    with open(path, "rb") as file:
        try:
            mapped = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:   # an empty file cannot be mapped
            return b""
    with mapped:
        view = memoryview(mapped)
        try:
            return _rewrite(view, _MODEL_GRAPH, lambda graph: _rewrite(graph, _GRAPH_INITIALIZER,
                                                                       lambda t: _strip_tensor(t, keep_elements)))
        finally:
            view.release()


def _rewrite(message: memoryview, field: int, transform) -> bytes:
    """`message` with each length-delimited `field` replaced by `transform(its bytes)`, other fields verbatim."""
    parts = []
    for number, wire, start, value_start, end in _fields(message):
        if number == field and wire == _LENGTH_DELIMITED:
            value = transform(message[value_start:end])
            parts.append(_varint_bytes(number << 3 | wire) + _varint_bytes(len(value)) + value)
        else:
            parts.append(message[start:end].tobytes())
    return b"".join(parts)


def _strip_tensor(tensor: memoryview, keep_elements: int) -> bytes:
    fields = list(_fields(tensor))
    dims = []
    for number, wire, _, value_start, end in fields:
        if number == _TENSOR_DIMS:
            dims.extend(_packed(tensor[value_start:end]) if wire == _LENGTH_DELIMITED else
                        [_varint(tensor, value_start)[0]])
    keep = math.prod(dims) <= keep_elements
    return b"".join(tensor[start:end].tobytes() for number, _, start, _, end in fields
                    if keep or number not in _TENSOR_PAYLOADS)


def _fields(message: memoryview):
    """(field number, wire type, start, value start, end) of every field, in order."""
    position, size = 0, len(message)
    while position < size:
        start = position
        key, position = _varint(message, position)
        number, wire = key >> 3, key & 7
        value_start = position
        if wire == 0:
            _, position = _varint(message, position)
        elif wire == 1:
            position += 8
        elif wire == _LENGTH_DELIMITED:
            length, value_start = _varint(message, position)
            position = value_start + length
        elif wire == 5:
            position += 4
        else:
            raise WireError(f"unsupported wire type {wire} at byte {start}")
        if position > size or number == 0:
            raise WireError(f"truncated or malformed field at byte {start}")
        yield number, wire, start, value_start, position


def _varint(buffer: memoryview, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(buffer) or shift > 63:
            raise WireError("truncated varint")
        byte = buffer[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7


def _packed(buffer: memoryview) -> list[int]:
    values, position = [], 0
    while position < len(buffer):
        value, position = _varint(buffer, position)
        values.append(value)
    return values


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
