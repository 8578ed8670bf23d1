"""Framework adapters: each turns a target into a `Trace`. Only the adapter a target needs is imported.

An adapter is a module (`shapecheck.adapters.torch`, `keras`, `onnx`) that satisfies `Adapter`: every member is
there in every adapter, returning None or raising `Unsupported` where its framework cannot, so callers never ask
whether a member exists. This module imports no framework: the protocol's types are strings until checked.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shapecheck.audit import Audit, AuditHead
    from shapecheck.edits import Edit
    from shapecheck.labels import LabelInfo
    from shapecheck.losses import LossContract
    from shapecheck.oracle import LossCheck
    from shapecheck.shapes import TensorMeta
    from shapecheck.trace import Trace


class Adapter(Protocol):
    """What the pipeline asks of a framework. `model` is the framework's own object (an `nn.Module`, a
    `keras.Model`, an `onnx.ModelProto`)."""

    FRAMEWORK: str
    EDITABLE: frozenset[str]   # the `Edit.on` values `edited` applies to a copy of the model
    TRAINS: bool               # whether `train_step` can run a real step (verification says so when it cannot)
    TAKES_VALUES: bool         # whether `trace` and `train_step` feed `example` values and run `post`

    def owns(self, obj: object) -> bool: ...

    def prepare(self) -> None:
        """Import what tracing needs, before `--timeout` starts counting: the limit is the model's, not ours."""
        ...

    def load_file(self, path: str, trust: bool = False) -> Any: ...

    def recording_definition_sites(self) -> AbstractContextManager[Mapping]:
        """While a factory runs: the user's line that created each layer."""
        ...

    def trace(self, model: Any, specs: list[TensorMeta], target: str, sites: Mapping | None = None,
              example: Any = None, post: Any = None) -> Trace:
        """The forward pass at the batch of `specs` (or of `example`), with the pass at the next batch as
        `alternate`. `example` holds input values, `post` the user's code between model and loss; a framework
        that traces shapes only takes their shapes."""
        ...

    def declared_inputs(self, model: Any, batch: int) -> list[TensorMeta] | None:
        """The input shapes the model declares, at `batch`; None when it declares none."""
        ...

    def compiled_losses(self, model: Any, from_logits: bool | None) -> dict[str, LossContract]:
        """The losses the model was compiled with, by output name ("" for one loss for every output); {} when
        it carries none."""
        ...

    def check_loss(self, output: TensorMeta, labels: LabelInfo, loss: LossContract) -> LossCheck | None:
        """The framework's own verdict on the loss applied to the output and labels."""
        ...

    def edited(self, model: Any, edits: tuple[Edit, ...], labels: LabelInfo | None) -> Any:
        """A copy of the model with `edits` applied; raises `Unsupported` for one it cannot apply."""
        ...

    def train_step(self, model: Any, specs: list[TensorMeta], example: Any, labels: LabelInfo, loss: LossContract,
                   post: Any = None) -> str:
        """One real training step of an edited copy, described in a line; raises `Unsupported` when it cannot."""
        ...

    def audit(self, model: Any, specs: list[TensorMeta], example: Any, heads: Sequence[AuditHead]
              ) -> tuple[Audit | None, str]:
        """The training-signal audit (`shapecheck.audit`) on a tiny real batch, or None and a note saying why not."""
        ...

# TensorFlow logs to stderr from C++ when it is imported (oneDNN notices, absl warnings); shapecheck computes
# nothing with it, so these are noise in a linter's output. Set before any framework import.
_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def quiet_frameworks():
    for name, value in _QUIET.items():
        os.environ.setdefault(name, value)


def keep_triton_out_after_tensorflow():
    """triton's native modules crash the process when they load after TensorFlow's (a Keras target checked before
    a PyTorch one, in one process). The CPU tracer never needs triton and PyTorch handles its absence, so once
    TensorFlow is in, triton is marked missing before any user module or torch import can pull it in."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None  # type: ignore[assignment]  # None in sys.modules: importing it raises
