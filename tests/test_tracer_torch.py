"""The PyTorch tracer: what it records, what it leaves untouched, and how it copes with hard models."""

from __future__ import annotations

import sys

import pytest
import torch
from torch import nn

from shapecheck.adapters import torch as torch_adapter
from shapecheck.pipeline import run
from shapecheck.request import Flags
from shapecheck.shapes import TensorMeta

sys.path.insert(0, "fixtures/torch")
import cli_models  # noqa: E402


@pytest.fixture(autouse=True)
def _repo_root(monkeypatch, request):
    monkeypatch.chdir(request.config.rootpath)


def trace(model, *shapes, dtype="float32"):
    return torch_adapter.trace(model, [TensorMeta(s, dtype) for s in shapes], "test")


def test_model_is_left_as_it_was():
    model = cli_models.SmallCNN().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trace(model, (4, 3, 16, 16))
    assert not model.training and not any(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # BatchNorm counters included
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


def test_every_layer_is_recorded_with_shapes_and_definition_line():
    loaded = run(Flags(inputs=["4,3,16,16"]).request("fixtures/torch/cli_models.py:classifier"))
    layers = {layer.name: layer for layer in loaded.trace.layers}
    assert layers["features.0"].inputs[0].shape == (4, 3, 16, 16)
    assert layers["features.0"].output.shape == (4, 8, 16, 16)
    assert layers["fc"].inputs[0].shape == (4, 8) and layers["fc"].output.shape == (4, 10)
    assert str(layers["features.0"].source) == "fixtures/torch/cli_models.py:14"
    assert loaded.trace.mode == "symbolic"


def test_structured_output_uses_the_logits_field():
    result = trace(cli_models.structured_output(), (4, 16))
    assert result.output_path == ".logits" and result.output.shape == (4, 3)
    assert set(result.outputs) == {".features", ".logits"}


def test_functional_ops_in_forward_are_recorded():
    result = trace(cli_models.softmax_in_forward(), (4, 16))
    op = result.value_producer(result.output_op)
    assert op.name == "softmax" and op.args == {"dim": 1, "args": []}
    assert op.source is not None and op.source.path.endswith("cli_models.py")


def test_failure_pins_the_innermost_layer_and_its_inputs():
    model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Sequential(nn.Linear(64, 4)))
    result = trace(model, (4, 16))
    assert result.failure.layer == "2.0"
    assert result.failure.inputs[0].shape == (4, 32)
    assert [layer.name for layer in result.layers if layer.calls] == ["", "0", "1", "2", "2.0"]


def test_data_dependent_forward_falls_back_to_a_real_pass():
    result = trace(cli_models.data_dependent(), (4, 16))
    assert result.mode == "real" and result.output.shape == (4, 2)
    assert any("traced with random data" in note for note in result.notes)


def test_a_model_too_large_for_memory_traces_on_the_meta_device():
    model = cli_models.too_large_for_memory()   # 4.3B parameters, never allocated
    result = trace(model, (2, 8192))
    assert result.output.shape == (2, 5) and result.failure is None


def test_hard_coded_batch_shows_at_the_second_batch_size():
    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(12, 3)

        def forward(self, x):
            return self.fc(x.view(4, -1))

    result = trace(Fixed(), (4, 3, 4))
    assert result.failure is None and result.alternate.failure is not None
    assert result.alternate.batch == 5


def test_dtype_mismatch_is_raised_like_eager_pytorch():
    result = trace(nn.Linear(8, 2), (4, 8), dtype="float64")
    assert result.failure is not None and result.failure.op == "linear"


def test_torchscript_and_exported_programs(tmp_path):
    model = cli_models.SmallCNN().eval()
    torch.jit.script(model).save(tmp_path / "model.ts.pt")
    example = (torch.randn(2, 3, 16, 16),)
    batch = torch.export.Dim("batch")
    torch.export.save(torch.export.export(model, example, dynamic_shapes=({0: batch},)), tmp_path / "model.pt2")
    torch.export.save(torch.export.export(model, example), tmp_path / "static.pt2")
    flags = Flags(inputs=["4,3,16,16"], loss="BCEWithLogitsLoss", labels="4")
    scripted, exported, static = [run(flags.request(str(tmp_path / name)))
                                  for name in ("model.ts.pt", "model.pt2", "static.pt2")]
    assert scripted.trace.output.shape == (4, 10) and "SC101" in {f.rule for f in scripted.findings}
    assert exported.trace.layer("fc").inputs[0].shape == (4, 8)
    assert [f.layer for f in exported.findings if f.rule == "SC101"] == ["fc"]
    assert static.trace.failure is not None and "Guard failed" in static.trace.failure.message
