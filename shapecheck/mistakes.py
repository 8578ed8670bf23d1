"""Mistakes in how a check was asked for, said as the user's mistake (one line, exit code 2) instead of reported as
the model's bug: sizes separated by spaces, options on the wrong side of a script, one `--input` for a forward that
takes two, an input without its batch axis. The last two are recognised by what they do to the check, so they are
looked for only when the check failed."""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Sequence

from shapecheck.engine import Result
from shapecheck.errors import ShapecheckError
from shapecheck.request import Request
from shapecheck.shapes import TensorMeta

SIZES = re.compile(r"\d+(?:[,x]\d+)*(?::\w+)?")       # `3`, `128,128`, `1:float32`: a shape's tail, not a target
SHAPE_OPTIONS = ("--input", "--labels")
WRONG_ARGUMENT_COUNT = re.compile(r"\b(?:forward|call)\(\) (?:missing \d+ required positional|takes \d+ positional)")


def reject_stray_sizes(argv: Sequence[str]) -> None:
    """`--input 4 3 128 128` reads `4` as the input and `3`, `128`, `128` as targets: a number after an option's
    value is never a target."""
    for index, token in enumerate(argv):
        option, equals, inline = token.partition("=")
        if option not in SHAPE_OPTIONS:
            continue
        value = inline if equals else "".join(argv[index + 1:index + 2])
        run = _leading_sizes(argv[index + 1:] if equals else argv[index + 2:])
        if run:
            raise ShapecheckError(f"sizes are separated by commas: {option} {','.join([value, *run])}")


def _leading_sizes(tokens: Sequence[str]) -> list[str]:
    run = []
    for token in tokens:
        if not SIZES.fullmatch(token):
            break
        run.append(token)
    return run


def reject_options_before_script(script: str, script_args: Sequence[str]) -> None:
    """`run --epochs 1 train.py`: the script's options were put where shapecheck's go."""
    if not script.startswith("-"):
        return
    words = [script, *script_args]
    at = next((i for i, word in enumerate(words) if word.endswith(".py")), None)
    if at is None:
        example = "train.py " + " ".join(words)
    else:
        example = " ".join([words[at], *words[:at], *words[at + 1:]])
    raise ShapecheckError("shapecheck's options go before the script; the script's after it: "
                          f"shapecheck run [OPTIONS] {example}")


def reject_invocation_mistakes(requests: Sequence[Request], results: Sequence[Result]) -> None:
    """A check that failed because of the `--input` it was given, not because of the model."""
    for request, result in zip(requests, results):
        if request.inputs and result.error is None and result.trace is not None:
            mistake = _wrong_input_count(request, result) or _missing_batch_axis(request, result)
            if mistake:
                raise ShapecheckError(f"{result.target}: {mistake}")


def _wrong_input_count(request: Request, result: Result) -> str | None:
    """The model itself (no layer inside it) was called with more or fewer inputs than its forward takes."""
    from shapecheck import pipeline

    failure = result.trace.failure
    if failure is None or failure.layer or not WRONG_ARGUMENT_COUNT.search(failure.message):
        return None
    try:
        model = pipeline.load(request).model
    except ShapecheckError:
        return None
    required, positional = _forward_parameters(model)
    given = len(request.inputs)
    if given < len(required):
        return f"forward takes {_inputs(required)}: repeat --input, one per input"
    return f"forward takes {_inputs(positional)}, not {given}: give one --input per input"


def _forward_parameters(model) -> tuple[list[str], list[str]]:
    """The names of the forward's (a Keras model's `call`) required and of all its positional parameters."""
    forward = getattr(model, "forward", None) or model.call
    positional = [p for p in inspect.signature(forward).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [p.name for p in positional if p.default is p.empty], [p.name for p in positional]


def _inputs(names: list[str]) -> str:
    return f"{len(names)} input{'s' if len(names) != 1 else ''} ({', '.join(names)})"


def _missing_batch_axis(request: Request, result: Result) -> str | None:
    """The layer or batch checks failed, and pass with a batch axis put in front of every input: the input was
    one sample. (PyTorch's convolutions and linear layers accept an unbatched sample, so the failure shows
    layers later, as a BatchNorm or a flatten that looks wrong.)"""
    from shapecheck import pipeline

    if not _failed_on_shapes(result):
        return None
    known = result.labels.shape[0] if result.labels is not None and result.labels.shape else None
    batched = tuple(TensorMeta((known or pipeline.DEFAULT_BATCH, *t.shape), t.dtype) for t in request.inputs)
    again = pipeline.run(dataclasses.replace(request, inputs=batched, verify_fixes=False, compute_patches=False))
    if again.error is not None or _failed_on_shapes(again):
        return None
    specs = " ".join(f"--input {_spec(t, known)}" for t in request.inputs)
    subject = "the input has" if len(request.inputs) == 1 else "the inputs have"
    return f"{subject} no batch axis: {specs}"


def _failed_on_shapes(result: Result) -> bool:
    """The forward failed, or a layer (SC2xx), batch (SC3xx) or tracing (SC9xx) check found an error."""
    return result.trace is not None and result.trace.failure is not None or any(
        f.severity == "error" and f.rule[:3] in ("SC2", "SC3", "SC9") for f in result.findings)


def _spec(meta: TensorMeta, batch: int | None) -> str:
    dtype = f":{meta.dtype}" if meta.dtype != "float32" else ""
    return ",".join([str(batch or "N"), *map(str, meta.shape)]) + dtype
