"""Builders for the engine's unit tier: traces, labels and loss contracts made by hand, as an adapter would record
them, and what the engine reports on them. No framework is imported."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shapecheck import engine
from shapecheck.audit import FIT_STEPS, Audit, Constant, Fit, HeadAudit, OutputValues, Stop, Unreached
from shapecheck.labels import LabelInfo, from_array, from_spec
from shapecheck.losses import LossContract, resolve_loss
from shapecheck.oracle import simulate
from shapecheck.recipes.keras import KerasRecipes
from shapecheck.recipes.onnx import OnnxRecipes
from shapecheck.recipes.torch import TorchRecipes
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Failure, Layer, Op, Trace

FRAMEWORKS = ("torch", "tensorflow", "keras", "onnx", "onnxruntime")
RECIPES = {"torch": TorchRecipes, "keras": KerasRecipes, "onnx": OnnxRecipes}


# --- builders: tensors, layers, a forward pass, labels, losses -------------------------------------------------------

def meta(*shape: int, dtype: str = "float32") -> TensorMeta:
    return TensorMeta(tuple(shape), dtype)


def linear(name: str, in_features: int, out_features: int, **fields) -> Layer:
    return Layer(name, "Linear", "linear", params={"weight": meta(out_features, in_features)},
                 config={"in_features": in_features, "out_features": out_features}, **fields)


def conv(name: str, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1) -> Layer:
    return Layer(name, "Conv2d", "conv", params={"weight": meta(out_channels, in_channels, kernel_size, kernel_size)},
                 config={"in_channels": in_channels, "out_channels": out_channels, "channel_axis": 1,
                         "kernel_size": (kernel_size, kernel_size), "padding": (padding, padding)})


def lstm(name: str, input_size: int, hidden_size: int, **config) -> Layer:
    return Layer(name, "LSTM", "rnn", params={"weight_ih_l0": meta(4 * hidden_size, input_size)},
                 config={"input_size": input_size, "hidden_size": hidden_size, **config})


def embedding(name: str, count: int, width: int) -> Layer:
    return Layer(name, "Embedding", "embedding", params={"weight": meta(count, width)},
                 config={"num_embeddings": count, "embedding_dim": width})


class Forward:
    """A forward pass recorded op by op, as an adapter records it. Each op reads the previous op's output (the
    model input for the first) unless `reads` lists the producers (op indices, -1 for the input); keyword arguments
    are the op's own arguments (`dim=1`, `args=[-1, 400]`)."""

    def __init__(self, *inputs: TensorMeta, framework: str = "torch"):
        self.inputs, self.framework = list(inputs), framework
        self.ops: list[Op] = []
        self.failure: Failure | None = None

    def op(self, name: str, out: tuple, layer: str = "", reads: list[int] | None = None, **args) -> Forward:
        producers = self._producers(reads)
        self.ops.append(Op(len(self.ops), name, layer, self._tensors(producers), [meta(*out)], producers, args))
        return self

    def fails(self, op: str, layer: str | None = None, reads: list[int] | None = None, **args) -> Forward:
        """The forward pass raises in `op` (inside `layer`) on what it reads, as `op` would have."""
        producers = self._producers(reads)
        self.failure = Failure(layer, op, "RuntimeError", "a hand-built failure", self._tensors(producers),
                               producers=producers, args=args)
        return self

    def trace(self, *layers: Layer, **fields) -> Trace:
        """The trace, with each layer's inputs and outputs taken from the op (or the failure) that ran it. The last
        op's result is the model output unless the pass failed."""
        for layer in layers:
            self._record_call(layer)
        if self.ops and self.failure is None:
            fields = {"outputs": {"": self.ops[-1].outputs[0]}, "output_path": "", "output_op": len(self.ops) - 1,
                      **fields}
        return Trace("model.py:Net", self.framework, self.inputs, list(layers), self.ops, failure=self.failure,
                     model_class="Net", **fields)

    def _producers(self, reads: list[int] | None) -> list[int]:
        return reads if reads is not None else [len(self.ops) - 1 if self.ops else -1]

    def _tensors(self, producers: list[int]) -> list[TensorMeta]:
        return [self.inputs[0] if p == -1 else self.ops[p].outputs[0] for p in producers]

    def _record_call(self, layer: Layer) -> None:
        if self.failure is not None and self.failure.layer == layer.name:
            layer.inputs, layer.input_producers, layer.calls = self.failure.inputs, self.failure.producers, 1
            return
        op = next((op for op in self.ops if op.layer == layer.name), None)
        if op is not None and not layer.inputs:
            layer.inputs, layer.outputs, layer.input_producers, layer.calls = op.inputs, op.outputs, op.producers, 1


def head(x: TensorMeta, out: tuple, then: tuple = ()) -> Trace:
    """A model that is one Linear `fc` on `x`, followed by the `then` ops ((name, shape, args) triples)."""
    forward = Forward(x).op("linear", out, "fc")
    for name, shape, args in then:
        forward.op(name, shape, **args)
    return forward.trace(linear("fc", x.shape[-1], out[-1]))


def labels_of(values, dtype: str) -> LabelInfo:
    """Labels with known values (`--labels-file`), so the value rules see their statistics."""
    return from_array(np.array(values, dtype=dtype), "labels.npy")


def labels_shaped(spec: str) -> LabelInfo:
    """Labels known by shape and dtype only (`--labels 8,10:int64`)."""
    return from_spec(spec, "float32")


def one_hot(ids: list[int], columns: int) -> np.ndarray:
    return np.eye(columns, dtype="float32")[ids]


def torch_loss(name: str) -> LossContract:
    return resolve_loss(name, "torch")


def keras_loss(name: str, from_logits: bool = False) -> LossContract:
    return resolve_loss(name, "keras", from_logits)


@dataclass
class Case:
    trace: Trace
    loss: LossContract | None = None
    labels: LabelInfo | None = None


# --- what the training-signal audit measures (`shapecheck.audit`), as facts a case's trace carries -----------------

def unreached(*layers: str, stop: Stop | None = None) -> Audit:
    """`layers` got no gradient from the loss, at initialisation nor after the audit's training steps."""
    return Audit(unreached=Unreached(layers, values=100 * len(layers), total=1000, steps=3, stop=stop))


def measured_head(output: str | None = None, **facts) -> Audit:
    """One head's measurements: `values`, `loss_value`, `loss_error`, `constant`, `labels_real`."""
    return Audit(heads={output or "": HeadAudit(**facts)})


def probabilities(classes: int) -> OutputValues:
    """Rows of `classes` values in [0, 1] that sum to 1: a softmax's output."""
    return OutputValues(0.05, 0.4, classes, (1.0, 1.0), (classes * 1.1, classes * 1.4))


def fitted(initial: float, final: float, trainable: int = 1000) -> Audit:
    """The one-batch overfit took the loss from `initial` to `final` (`trainable` 0: every parameter frozen)."""
    return Audit(fit=Fit(8, FIT_STEPS, initial, final, trainable))


def log_probabilities(classes: int) -> OutputValues:
    """A log_softmax's output: every row's exp sums to 1."""
    return OutputValues(-4.0, -0.5, classes, (-25.0, -18.0), (1.0, 1.0))


def scores(classes: int) -> OutputValues:
    """Raw scores, neither probabilities nor log-probabilities."""
    return OutputValues(-2.5, 3.1, classes, (-1.2, 2.0), (4.0, 30.0))


def constant(value: float = 1.0, op: str = "", layer: str = "") -> Constant:
    return Constant((value, value), op, layer)


def findings(case: Case, *codes: str):
    """What the engine reports with only `codes` selected; the loss's verdict is the oracle's, as for an ONNX graph."""
    trace, loss, labels = case.trace, case.loss, case.labels
    known = trace.output is not None and loss is not None and labels is not None
    verdict = simulate(trace.output, labels.meta, labels.array, loss) if known else None
    recipes = RECIPES[trace.framework](trace.library)
    return engine.check(trace, loss, labels, recipes, select=set(codes), loss_check=verdict)


def assert_no_framework_imported(module: str, statement: str) -> None:
    """In a fresh interpreter, import the test module `module` as `cases` and run `statement`: no framework gets
    loaded (the plugins and other test modules of a full run load frameworks of their own)."""
    script = (f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import {module} as cases; "
              f"{statement}; print(sorted(name for name in {FRAMEWORKS!r} if name in sys.modules))")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "[]", run.stdout + run.stderr
