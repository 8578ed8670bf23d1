"""PyTorch factories are built with their parameters on the meta device: no weight memory, no initialisation.
Values are made later, small, only for what needs them (the probe, a real pass), and the findings are the same."""

from __future__ import annotations

import resource
import textwrap

import pytest
import torch
from torch import nn

from shapecheck import pipeline, targets
from shapecheck.request import Flags


@pytest.fixture
def factory_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(code: str) -> str:
        (tmp_path / "models.py").write_text(textwrap.dedent(code))
        return "models.py"
    return write


def check(target: str, *inputs: str, loss=None, labels=None):
    result = pipeline.run(Flags(inputs=inputs, loss=loss, labels=labels).request(target))
    assert result.error is None, result.error
    return result


def test_a_factory_of_100_gb_of_parameters_is_checked_without_allocating_them(factory_file):
    path = factory_file("""
        from torch import nn

        class Sorted(nn.Module):   # an op shapecheck cannot prove keeps samples apart: the probe is wanted
            def forward(self, x):
                return x.sort(dim=1).values

        def build():   # 25 billion float32 parameters: 100 GB if allocated
            return nn.Sequential(*[nn.Linear(50_000, 50_000) for _ in range(10)], nn.Linear(50_000, 3), Sorted())
    """)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux
    result = check(f"{path}:build", "2,50000", loss="CrossEntropyLoss", labels="2:int64")
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert result.trace.output.shape == (2, 3) and not result.has_errors
    assert grown_mib < 1024, f"peak memory grew by {grown_mib:.0f} MiB"
    assert any("probe skipped" in note for note in result.trace.notes)


def test_a_factory_that_reads_its_weights_is_built_for_real_and_says_so(factory_file):
    path = factory_file("""
        import torch
        from torch import nn

        def build():
            model = nn.Linear(8, 3)
            with torch.no_grad():
                model.weight[0, 0] = model.weight.abs().max().item()   # reads a value
            return model
    """)
    result = check(f"{path}:build", "4,8", loss="CrossEntropyLoss", labels="4:int64")
    assert any(note.startswith("built with real weights") for note in result.trace.notes), result.trace.notes
    assert not result.has_errors


def test_the_model_is_built_on_the_meta_device(factory_file):
    path = factory_file("""
        from torch import nn

        def build():
            return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.Linear(16, 3))
    """)
    loaded = targets.load(f"{path}:build")
    assert all(p.is_meta for p in loaded.model.parameters())
    assert not any(b.is_meta for b in loaded.model.buffers())   # statistics and masks keep their values


SMALL_MODELS = """
    import torch
    from torch import nn
    import torchvision

    class Recurrent(nn.Module):   # mixes samples: the probe must still run on a model built without weights
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(12, 16)
            self.fc = nn.Linear(16, 4)

        def forward(self, x):
            return self.fc(self.lstm(x)[0][:, -1])

    def resnet():
        return torchvision.models.resnet18(num_classes=10)

    def recurrent():
        return Recurrent()

    def segmenter():
        return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 5, 1))
"""


@pytest.mark.parametrize(("factory", "inputs", "loss", "labels"), [
    ("resnet", "2,3,64,64", "BCEWithLogitsLoss", "2,1"),
    ("recurrent", "4,7,12", "CrossEntropyLoss", "4:int64"),
    ("segmenter", "2,3,16,16", "CrossEntropyLoss", "2,16,16:int64"),
])
def test_findings_are_the_same_as_with_a_real_build(factory_file, factory, inputs, loss, labels):
    path = factory_file(SMALL_MODELS)
    without_weights = check(f"{path}:{factory}", inputs, loss=loss, labels=labels)
    module = targets._import(path)
    real_model = getattr(module, factory)()
    assert not any(p.is_meta for p in real_model.parameters())
    loaded = targets.LoadedTarget(f"{path}:{factory}", real_model, targets.adapter_for(real_model))
    real = pipeline.run(Flags(inputs=[inputs], loss=loss, labels=labels).request(loaded.target, loaded))

    def described(result):
        return [(f.rule, f.message, [str(fix) for fix in f.fixes]) for f in result.findings]
    assert described(without_weights) == described(real)
    assert without_weights.trace.output == real.trace.output


def test_a_probe_on_a_model_built_without_weights_finds_mixing(factory_file):
    result = check(f"{factory_file(SMALL_MODELS)}:recurrent", "4,7,12", loss="CrossEntropyLoss", labels="4:int64")
    assert "SC304" in {f.rule for f in result.findings}


def test_the_users_own_model_object_is_not_touched():
    model = nn.Linear(8, 3)
    before = model.weight.detach().clone()
    loaded = targets.LoadedTarget("model", model, targets.adapter_for(model))
    pipeline.run(Flags(inputs=["4,8"], loss="CrossEntropyLoss", labels="4:int64").request(loaded.target, loaded))
    assert torch.equal(model.weight, before) and not model.weight.is_meta


class Initialised(nn.Module):
    """Initialisations a factory writes into parameters that are on the meta device while it runs."""

    def __init__(self):
        super().__init__()
        self.hidden, self.head, self.proj = nn.Linear(8, 8), nn.Linear(8, 3), nn.Linear(8, 8)
        self.token = nn.Parameter(torch.zeros(1, 8))          # made with its values
        nn.init.zeros_(self.hidden.weight)                      # an nn.init call (some skip meta tensors)
        self.hidden.bias.data.fill_(0.5)                        # through `.data`
        nn.init.trunc_normal_(self.head.weight, std=0.02)       # returns early on a meta tensor
        self.proj.weight.data.copy_(self.hidden.weight.data)    # from another meta tensor: not replayable


def test_the_factorys_initialisation_is_replayed_when_weights_are_made():
    from shapecheck.adapters.torch.weights import building_without_weights, materialize

    with building_without_weights():
        model = Initialised()
    assert model.hidden.weight.is_meta and materialize(model)
    assert torch.equal(model.hidden.weight, torch.zeros(8, 8)) and torch.equal(model.hidden.bias, torch.full((8,), 0.5))
    assert torch.equal(model.token, torch.zeros(1, 8))
    assert 0.01 < float(model.head.weight.std()) < 0.04   # not the default kaiming bound of 1/sqrt(8)
    assert float(model.proj.weight.abs().max()) > 0       # its module's default initialisation instead
