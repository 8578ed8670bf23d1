"""Which output each loss and labels belong to: the heads of a check.

A model with one output has one head. A model with several is checked per output that has a loss and labels: the
pairing comes from the user (`--loss gender=binary_crossentropy --labels gender=...`, a labels `.npz` keyed by
output name, `fit(x, {"age": ..., "gender": ...})`) or from the model (Keras `compile(loss={...} | [...])`).
Outputs left without a loss or labels are named in a note, never skipped silently. Imports no framework.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from shapecheck.engine import HeadCheck
from shapecheck.errors import ShapecheckError
from shapecheck.labels import LabelInfo, one_array_per_output, split_per_output
from shapecheck.losses import LossContract
from shapecheck.request import Head
from shapecheck.shapes import fmt
from shapecheck.trace import Trace

Labels = LabelInfo | Mapping[str, LabelInfo] | None
ALL_OUTPUTS = ""   # the key of a compiled loss that applies to every output (Keras `compile(loss="mse")`)


def output_name(path: str) -> str:
    """How users name an output: `gender` for a Keras output or a dict key (`['gender']`), `logits` for
    `.logits`, `1` for the second item of a tuple (`[1]`)."""
    return path.strip(".[]'\"")


def plan(heads: tuple[Head, ...], trace: Trace, compiled: Mapping[str, LossContract],
         loss_of: Callable[[Head], LossContract | None],
         labels_of: Callable[[Head, LossContract | None], Labels]) -> tuple[list[HeadCheck], list[str]]:
    """The heads to check and the notes on what is left unchecked. `compiled` holds the model's own losses by
    output name (`ALL_OUTPUTS` for one loss for every output); `loss_of` and `labels_of` resolve a head's."""
    paths = {output_name(path): path for path in trace.outputs}
    checks: list[HeadCheck] = []
    notes: list[str] = []
    named = {_output_path(head.output, paths): head for head in heads if head.output is not None}
    for head in heads:
        if head.output is not None:
            continue
        unnamed = _unnamed(head, loss_of(head), trace, paths, compiled, labels_of, notes)
        for check in unnamed:   # the model's labels by output, for the outputs named with their own loss
            if check.output in named and check.labels is not None:
                own = named[check.output]
                named[check.output] = dataclasses.replace(own, labels=own.labels or check.labels)
        checks += [check for check in unnamed if check.output not in named]
    for path, head in named.items():
        loss = loss_of(head) or compiled.get(output_name(path)) or compiled.get(ALL_OUTPUTS)
        checks.append(HeadCheck(path, output_name(path), loss, _single(labels_of(head, loss), head.output)))
    order = list(paths.values())
    checks.sort(key=lambda check: order.index(check.output) if check.output in order else 0)   # the model's order
    if len(checks) > 1 and len({check.output for check in checks}) < len(checks):
        raise ShapecheckError("an output is given two losses or two sets of labels: name each output once")
    if len(paths) > 1:   # labels paired with one output each are that output's, not one array for all
        for check in checks:
            if check.output is not None and check.labels is not None and (check.name or len(checks) > 1):
                check.labels = dataclasses.replace(check.labels, per_output=len(paths))
    return checks, notes + _unpaired_notes(checks, trace, paths)


def _unnamed(head: Head, loss: LossContract | None, trace: Trace, paths: dict[str, str],
             compiled: Mapping[str, LossContract], labels_of, notes: list[str]) -> list[HeadCheck]:
    """A loss and labels given for the model as a whole: per output when the labels or the model's compiled
    losses say which output is which, else for the main output."""
    per_output_losses = {name: contract for name, contract in compiled.items() if name != ALL_OUTPUTS}
    labels = labels_of(head, loss or compiled.get(ALL_OUTPUTS) or next(iter(per_output_losses.values()), None))
    if isinstance(labels, LabelInfo) and len(paths) > 1 and trace.framework == "keras":
        if one_array_per_output(labels, len(paths)):
            notes.append("the labels hold one array per model output, as Python objects; they are not checked "
                         "(save them as an .npz keyed by output name)")
            labels = None
        else:
            labels = split_per_output(labels, list(paths)) or labels   # a stack [K, N, ...]: one per output
    if isinstance(labels, Mapping) or (per_output_losses and len(paths) > 1):
        checks = []
        for name, path in paths.items():
            contract = loss or per_output_losses.get(name) or compiled.get(ALL_OUTPUTS)
            own = labels.get(name) if isinstance(labels, Mapping) else labels
            if contract is not None or own is not None:
                checks.append(HeadCheck(path, name, contract, own))
        if isinstance(labels, Mapping):
            _unknown_keys(labels, paths)
        if checks:
            return checks
    main = trace.output_path
    contract = loss or compiled.get(ALL_OUTPUTS) or (per_output_losses.get(output_name(main)) if main else None)
    return [HeadCheck(main, "", contract, _single(labels, None))]


def _single(labels: Labels, output: str | None) -> LabelInfo | None:
    if isinstance(labels, Mapping):
        if output is not None and output in labels:
            return labels[output]
        raise ShapecheckError(f"the labels hold one array per output ({', '.join(labels)}); give the output "
                              "they belong to, or a loss per output")
    return labels


def _output_path(name: str, paths: dict[str, str]) -> str:
    if name in paths:
        return paths[name]
    if name in paths.values():
        return name
    known = ", ".join(f"`{n}`" for n in paths) or "none (the forward pass returned no tensor)"
    raise ShapecheckError(f"the model has no output `{name}`; its outputs: {known}")


def _unknown_keys(labels: Mapping[str, LabelInfo], paths: dict[str, str]) -> None:
    unknown = [key for key in labels if key not in paths]
    if unknown:
        known = ", ".join(f"`{n}`" for n in paths)
        raise ShapecheckError(f"labels for `{'`, `'.join(unknown)}`, which the model does not output; its outputs: "
                              f"{known}")


def _unpaired_notes(checks: list[HeadCheck], trace: Trace, paths: dict[str, str]) -> list[str]:
    """Outputs no loss and labels were paired with, when others were (a single-output model needs no note)."""
    if len(paths) < 2 or not any(check.loss is not None and check.labels is not None for check in checks):
        return []
    checked = {check.output for check in checks}
    left = [name for name, path in paths.items() if path not in checked]
    if not left:
        return []
    shown = ", ".join(f"`{name}` {fmt(trace.outputs[paths[name]].shape)}" for name in left)
    return [f"output{'s' if len(left) > 1 else ''} {shown} {'were' if len(left) > 1 else 'was'} not checked against a "
            f"loss: name {'them' if len(left) > 1 else 'it'} to check {'them' if len(left) > 1 else 'it'} "
            f"(`--loss {left[0]}=LOSS --labels {left[0]}=SHAPE`)"]
