"""A generated sweep: models with many output shapes, each paired with many label shapes under every loss.

The framework's own loss, run here on real tensors, decides the expected answer: shapecheck must report an error
exactly when the loss raises or broadcasts the labels (an element-wise loss given another shape), and none when it
accepts matching shapes. A softmax cross-entropy over a class axis of size 1, which every framework accepts and which
learns nothing, counts as an error too (SC106 reports it). Activation findings are left out: the sweep varies shapes,
not final activations. Each combination also holds the framework-free shape model (what judges ONNX graphs) to the
framework's verdict.

`python tests/loss_sweep.py [torch|keras]` prints the counts; tests/test_loss_sweep.py asserts on the same runs.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass

N, C, L, H, W = 4, 3, 5, 6, 7
TORCH_OUTPUTS = [(N,), (N, 1), (N, C), (N, C, L), (N, L, C), (N, C, H, W), (N, 1, H, W)]
KERAS_OUTPUTS = [(N,), (N, 1), (N, C), (N, L, C), (N, H, W, C), (N, L, 1)]


@dataclass
class Case:
    loss: str
    output: tuple
    labels: tuple
    dtype: str
    truth: str              # what the framework did: "accepts", "raises", "broadcasts", "degenerate"
    reported: list          # shapecheck's error findings (rule codes)
    simulated: bool         # the framework-free model rejected it

    @property
    def expected_error(self) -> bool:
        return self.truth != "accepts"

    @property
    def agrees(self) -> bool:
        return bool(self.reported) == self.expected_error

    @property
    def model_agrees(self) -> bool:
        return self.simulated == (self.truth in ("raises", "broadcasts"))

    def __str__(self) -> str:
        return (f"{self.loss} output {list(self.output)} labels {list(self.labels)} {self.dtype}: framework "
                f"{self.truth}, shapecheck {','.join(self.reported) or 'silent'}, shape model "
                f"{'rejects' if self.simulated else 'accepts'}")


def label_shapes(outputs: list[tuple], class_axis: int) -> list[tuple]:
    """Every output shape, each without its class axis, one label per sample, and a batch from elsewhere."""
    shapes = set(outputs) | {(N,), (N, 1), (N + 1,)}
    shapes |= {o[:class_axis] + o[class_axis + 1:] if class_axis > 0 else o[:-1] for o in outputs if len(o) >= 2}
    return sorted(shapes, key=lambda s: (len(s), s))


def sweep(framework: str) -> list[Case]:
    return _torch_sweep() if framework == "torch" else _keras_sweep()


def _diagnose(adapter, trace, contract, labels_meta) -> list[str]:
    from shapecheck import pipeline
    from shapecheck.engine import HeadCheck, Result
    from shapecheck.labels import LabelInfo
    from shapecheck.request import Request

    head = HeadCheck(trace.output_path, loss=contract, labels=LabelInfo(labels_meta, "spec"))
    result = Result(trace.target, trace=trace, heads=[head])
    pipeline.judge(result, adapter)
    pipeline.rules(result, Request(trace.target))
    return [f.rule for f in result.findings if f.severity == "error" and f.category != "activation_vs_loss"]


def _torch_sweep() -> list[Case]:
    import torch
    from torch import nn

    from shapecheck import targets
    from shapecheck.losses import TORCH_LOSSES
    from shapecheck.oracle import simulate
    from shapecheck.shapes import TensorMeta

    class Head(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.sample = shape[1:]
            self.fc = nn.Linear(8, math.prod(self.sample))

        def forward(self, x):
            y = self.fc(x)
            return y.unflatten(1, self.sample) if self.sample else y[:, 0]

    cases = []
    for out in TORCH_OUTPUTS:
        model = Head(out)
        adapter = targets.adapter_for(model)
        trace = adapter.trace(model, [TensorMeta((N, 8))], f"head{list(out)}")
        for name, contract in TORCH_LOSSES.items():
            dtypes = [contract.target_dtype] + (["float32"] if contract.accepts_probabilities else [])
            for dtype in dtypes:
                for lab in label_shapes(TORCH_OUTPUTS, 1):
                    truth = _torch_truth(torch, getattr(nn, name)(), contract, out, lab, dtype)
                    meta = TensorMeta(lab, dtype)
                    cases.append(Case(name, out, lab, dtype, truth, _diagnose(adapter, trace, contract, meta),
                                      simulate(trace.output, meta, None, contract).rejected))
    return cases


def _torch_truth(torch, loss, contract, out: tuple, lab: tuple, dtype: str) -> str:
    prediction = torch.rand(out) if contract.input_space == "probabilities" else torch.randn(out)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            loss(prediction, torch.zeros(lab, dtype=getattr(torch, dtype)))
    except Exception:
        return "raises"
    if not contract.wants_class_indices and out != lab:
        return "broadcasts"
    if contract.family == "categorical" and len(out) >= 2 and out[1] == 1:   # a distribution over one class
        return "degenerate"
    return "accepts"


def _keras_sweep() -> list[Case]:
    import keras
    import numpy as np

    from shapecheck import targets
    from shapecheck.adapters.keras.loss import CLASSES
    from shapecheck.losses import KERAS_LOSSES, resolve_loss
    from shapecheck.oracle import simulate
    from shapecheck.shapes import TensorMeta

    cases = []
    for out in KERAS_OUTPUTS:
        model = _keras_head(keras, out)
        adapter = targets.adapter_for(model)
        trace = adapter.trace(model, [TensorMeta((N, 8))], f"head{list(out)}")
        for name in KERAS_LOSSES:
            contract = resolve_loss(name, "keras", from_logits=True)
            loss_class = getattr(keras.losses, CLASSES[name])
            loss = loss_class(from_logits=True) if contract.from_logits is not None else loss_class()
            for lab in label_shapes(KERAS_OUTPUTS, -1):
                dtype = contract.target_dtype
                truth = _keras_truth(keras, np, loss, contract, out, lab, dtype)
                meta = TensorMeta(lab, dtype)
                cases.append(Case(name, out, lab, dtype, truth, _diagnose(adapter, trace, contract, meta),
                                  simulate(trace.output, meta, None, contract).rejected))
    return cases


def _keras_head(keras, out: tuple):
    from keras import layers

    inputs = keras.Input((8,))
    sample = out[1:]
    x = layers.Dense(math.prod(sample), name="head")(inputs)
    x = layers.Reshape(sample)(x) if sample else keras.ops.squeeze(x, -1)
    return keras.Model(inputs, x)


def _keras_truth(keras, np, loss, contract, out: tuple, lab: tuple, dtype: str) -> str:
    from keras.src.losses.loss import squeeze_or_expand_to_same_rank

    target, prediction = np.zeros(lab, dtype=dtype), np.random.rand(*out).astype("float32")
    try:
        loss(target, prediction)
    except Exception:
        return "raises"
    squeezed_target, squeezed_prediction = squeeze_or_expand_to_same_rank(
        keras.ops.convert_to_tensor(target), keras.ops.convert_to_tensor(prediction))
    if not contract.wants_class_indices and tuple(squeezed_target.shape) != tuple(squeezed_prediction.shape):
        return "broadcasts"
    if contract.family == "categorical" and tuple(squeezed_prediction.shape)[-1] == 1:   # one class
        return "degenerate"
    return "accepts"


def main(framework: str = "torch") -> int:
    cases = sweep(framework)
    wrong = [case for case in cases if not case.agrees]
    model_wrong = [case for case in cases if not case.model_agrees]
    for case in wrong:
        print("DISAGREES", case)
    for case in model_wrong:
        print("SHAPE MODEL DISAGREES", case)
    by_truth = {truth: sum(c.truth == truth for c in cases) for truth in ("accepts", "raises", "broadcasts", "degenerate")}
    print(f"{framework}: {len(cases)} combinations ({', '.join(f'{k} {v}' for k, v in by_truth.items())}); "
          f"shapecheck agrees on {len(cases) - len(wrong)}/{len(cases)}, "
          f"the shape model on {len(cases) - len(model_wrong)}/{len(cases)}")
    return 1 if wrong or model_wrong else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
