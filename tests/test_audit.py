"""The PyTorch training-signal audit (`shapecheck.adapters.torch.audit`): where the gradient stops, outputs that
ignore the input, the values and loss the loss receives; correct models stay clean, deliberate choices (frozen
layers, zero-initialised heads, auxiliary outputs without a loss, hard routing) are not findings, and the user's
model is left as it was."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import shapecheck
from shapecheck.audit import AuditHead
from shapecheck.cli import main
from shapecheck.labels import from_array, from_spec
from shapecheck.losses import resolve_loss
from shapecheck.shapes import TensorMeta

# the adapter package exports the `audit` function under the module's own name
audit_module = importlib.import_module("shapecheck.adapters.torch.audit")


def measure(model: nn.Module, loss: str, labels, shape=(8, 16), output: str | None = None):
    labels = from_array(np.asarray(labels), "labels.npy") if not isinstance(labels, str) else \
        from_spec(labels, "float32")
    head = AuditHead(output, resolve_loss(loss, "torch"), labels)
    found, note = audit_module.audit(model, [TensorMeta(shape)], None, [head])
    assert found is not None, note
    return found


CLASS_IDS = np.arange(8) % 3


class Encoder(nn.Module):
    """An encoder and a 3-way head, with `cut` applied between them."""

    def __init__(self, cut=lambda h: h):
        super().__init__()
        self.encoder, self.head, self.cut = nn.Linear(16, 8), nn.Linear(8, 3), cut

    def forward(self, x):
        return self.head(self.cut(torch.relu(self.encoder(x))))


@pytest.mark.parametrize("cut, op", [
    (lambda h: h.detach(), "detach"),
    (lambda h: h * torch.zeros_like(h), "mul"),           # a mask multiplied to zero
    (lambda h: h.round(), "round"),
])
def test_the_gradient_stops_where_the_signal_is_cut(cut, op):
    found = measure(Encoder(cut), "CrossEntropyLoss", CLASS_IDS)
    assert found.unreached is not None and found.unreached.layers[0] == "encoder"   # a zero mask: `head.weight` too
    assert found.unreached.stop.op == op and found.unreached.stop.shape == (8, 8)


def test_a_softmax_over_one_value_cuts_every_layer_and_makes_the_output_constant():
    model = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 1), nn.Softmax(dim=1))
    found = measure(model, "BCELoss", (np.arange(8) % 2).astype("float32").reshape(8, 1))
    assert found.unreached.layers == ("0", "2") and found.unreached.stop.op == "softmax"
    assert found.head(None).constant.value_range == (1.0, 1.0)


def test_a_cast_that_maps_every_input_to_one_id_is_where_the_output_stops_following_the_input():
    class Bucketed(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed, self.head = nn.Embedding(10, 4), nn.Linear(4, 3)

        def forward(self, x):
            return self.head(self.embed((x[:, 0] / 100).long().clamp(0, 9)))

    constant = measure(Bucketed(), "CrossEntropyLoss", CLASS_IDS).head(None).constant
    assert constant is not None and constant.op == "long"


class ZeroInitHead(Encoder):
    def __init__(self):
        super().__init__()
        nn.init.zeros_(self.head.weight)   # as torchvision's ViT and ResNet(zero_init_residual=True) do


@pytest.mark.parametrize("model", [
    Encoder(),
    ZeroInitHead(),                                                  # gets its gradient after one step
    nn.Sequential(nn.Linear(16, 8), nn.Dropout(0.5), nn.BatchNorm1d(8), nn.Linear(8, 3)),
], ids=["plain", "zero-init-head", "dropout-batchnorm"])
def test_correct_models_are_clean(model):
    found = measure(model, "CrossEntropyLoss", CLASS_IDS)
    assert found.unreached is None and found.head(None).constant is None


def test_a_no_grad_block_is_named_as_the_stop():
    class NoGrad(Encoder):
        def forward(self, x):
            with torch.no_grad():
                hidden = torch.relu(self.encoder(x))
            return self.head(hidden)

    stop = measure(NoGrad(), "CrossEntropyLoss", CLASS_IDS).unreached.stop
    assert (stop.op, stop.layer, stop.shape) == ("no_grad", "encoder", (8, 16))


class HeldOutside(nn.Module):
    """Layers the loss trains that `parameters()` does not list: held in a plain list, or built in `forward`."""

    def __init__(self, built_in_forward=False, teacher=False):
        super().__init__()
        self.hidden = [nn.Linear(16, 8)]   # a plain list registers nothing
        self.head = nn.Linear(8, 3)
        self.built_in_forward, self.teacher = built_in_forward, teacher

    def forward(self, x):
        if self.teacher:   # kept outside on purpose, and run without a gradient
            with torch.no_grad():
                x = self.hidden[0](x)
        elif self.built_in_forward:
            x = nn.Linear(16, 8)(x)
        else:
            x = self.hidden[0](x)
        return self.head(torch.relu(x))


def test_layers_the_model_does_not_list_are_named_by_where_they_are_held():
    model = HeldOutside()
    found = measure(model, "CrossEntropyLoss", CLASS_IDS)
    assert found.unregistered.held == ("hidden[0]",) and not found.unregistered.created
    assert found.unregistered.values == 16 * 8 + 8
    assert model.hidden[0].weight.grad is None   # the audit's gradient is not left behind
    created = measure(HeldOutside(built_in_forward=True), "CrossEntropyLoss", CLASS_IDS).unregistered
    assert created.held == () and created.created


def test_a_teacher_held_outside_and_run_without_gradient_is_not_reported():
    assert measure(HeldOutside(teacher=True), "CrossEntropyLoss", CLASS_IDS).unregistered is None


def test_frozen_layers_are_the_users_choice():
    model = Encoder(lambda h: h)
    model.encoder.requires_grad_(False)
    assert measure(model, "CrossEntropyLoss", CLASS_IDS).unreached is None


def test_an_auxiliary_output_without_a_loss_is_not_a_cut_gradient():
    class WithAux(Encoder):
        def __init__(self):
            super().__init__()
            self.aux = nn.Linear(8, 3)

        def forward(self, x):
            hidden = torch.relu(self.encoder(x))
            return {"out": self.head(hidden), "aux": self.aux(hidden)}

    assert measure(WithAux(), "CrossEntropyLoss", CLASS_IDS, output="['out']").unreached is None


def test_an_expert_no_sample_of_the_batch_was_routed_to_is_not_a_cut_gradient():
    class HardRouting(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate = nn.Linear(16, 4)
            self.experts = nn.ModuleList(nn.Linear(16, 3) for _ in range(4))

        def forward(self, x):
            probabilities = torch.softmax(self.gate(x), dim=1)
            weight, index = probabilities.max(dim=1)
            outputs = torch.stack([expert(x) for expert in self.experts], dim=1)
            return weight.unsqueeze(1) * outputs[torch.arange(len(x)), index]

    torch.manual_seed(3)
    assert measure(HardRouting(), "CrossEntropyLoss", CLASS_IDS[:2], shape=(2, 16)).unreached is None


def test_the_users_model_is_left_as_it_was():
    model = nn.Sequential(nn.Linear(16, 8), nn.BatchNorm1d(8), nn.Dropout(0.1), nn.Linear(8, 3)).train()
    model[0].weight.grad = torch.full_like(model[0].weight, 7.0)
    state = {name: value.clone() for name, value in model.state_dict().items()}
    measure(model, "CrossEntropyLoss", CLASS_IDS)
    assert model.training and all(torch.equal(state[name], value) for name, value in model.state_dict().items())
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 7.0)) and model[3].weight.grad is None


def test_a_model_over_the_limit_is_skipped_with_a_note(monkeypatch):
    monkeypatch.setattr(audit_module, "MAX_PARAMETERS", 10)
    found, note = audit_module.audit(Encoder(), [TensorMeta((8, 16))], None,
                                     [AuditHead(None, resolve_loss("CrossEntropyLoss", "torch"),
                                                from_array(CLASS_IDS, "labels.npy"))])
    assert found is None and note == "training-signal audit skipped: 0M parameters (limit 0M)"


def stochastic_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.5), nn.ReLU(), nn.Linear(32, 3), nn.Softmax(dim=1))


def test_repeated_runs_of_a_stochastic_model_report_the_same_findings():
    reports = [shapecheck.check(stochastic_model(), (8, 16), "NLLLoss", torch.as_tensor(CLASS_IDS),
                                verify_fixes=False) for _ in range(10)]
    assert {str(report) for report in reports} == {str(reports[0])}
    assert {finding.rule for finding in reports[0].errors} == {"SC154"}


def test_no_audit_runs_the_static_checks_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.py").write_text(
        "import torch\nfrom torch import nn\n\n\nclass Net(nn.Module):\n"
        "    def __init__(self):\n        super().__init__()\n        self.a, self.b = nn.Linear(16, 8), nn.Linear(8, 3)\n\n"
        "    def forward(self, x):\n        return self.b(self.a(x).detach())\n")
    args = ["check", "model.py:Net", "--input", "8,16", "--loss", "CrossEntropyLoss", "--labels", "8:int64"]
    audited, static = CliRunner().invoke(main, args), CliRunner().invoke(main, [*args, "--no-audit"])
    assert audited.exit_code == 1 and "error[SC401]" in audited.output and "`detach`" in audited.output
    assert static.exit_code == 0 and "SC401" not in static.output


class Squashed(nn.Module):
    """A regression head squashed into [-5, 5] with a tiny slope: targets up to 900 are out of its reach."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))

    def forward(self, x):
        return 5 * torch.tanh(self.net(x) / 100)


def test_a_small_model_that_cannot_fit_a_handful_of_samples_is_measured_as_such():
    fit = measure(Squashed(), "MSELoss", np.linspace(0, 900, 8, dtype="float32").reshape(8, 1)).fit
    assert fit.steps == 300 and fit.final > 0.9 * fit.initial


def test_a_correct_small_model_fits_them():
    fit = measure(Encoder(), "CrossEntropyLoss", CLASS_IDS).fit
    assert fit.steps < 300 and fit.final <= 0.5 * fit.initial   # it stops once the loss halved


def test_a_frozen_backbone_is_not_overfit_and_an_all_frozen_model_trains_nothing():
    model = Encoder()
    model.encoder.requires_grad_(False)
    assert measure(model, "CrossEntropyLoss", CLASS_IDS).fit is None   # a linear probe memorises by design less
    model.head.requires_grad_(False)
    fit = measure(model, "CrossEntropyLoss", CLASS_IDS).fit
    assert (fit.trainable, fit.steps) == (0, 0)
