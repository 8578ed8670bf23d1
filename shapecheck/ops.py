"""The canonical op vocabulary: the one spelling per operation that `Op.name` and `Failure.op` hold, so rules list
each operation once.

PyTorch's functional names are the canonical ones (`softmax`, `view`, `cat`, `clamp`): its tracer records the
richest set of ops and most rules were written against it. The ONNX adapter lower-cases node types and names a few
itself (`Softmax` -> `softmax`, `Gemm` -> `linear`); the Keras adapter names a layer's computation by its kind
(`linear`, `conv`) or its lower-cased class (`concatenate`) and its activation by Keras' function name. The aliases
below fold the spellings that name the same operation. The framework's own spelling stays on `Op.spelling` and
`Failure.op_spelling`: messages print it, and op edits find the call in the user's code by it.

Aten names of `torch.export` graphs (`_softmax`, `convolution`) are not folded: rules have never matched them, and
folding would start reporting on exported graphs, a change of behaviour of its own.
"""

from __future__ import annotations

from typing import Final

ALIASES: Final[dict[str, str]] = {
    "concat": "cat",          # torch.concat; ONNX Concat
    "concatenate": "cat",     # torch.concatenate; Keras Concatenate
    "clip": "clamp",          # torch.clip; ONNX Clip
}


def canonical(name: str) -> str:
    """The canonical name of an op as a framework spells it (already lower-cased where the adapter does so)."""
    return ALIASES.get(name, name)
