"""Samples kept apart, proven from the recorded ops: the probe (two real forward passes) is skipped only then.

The proof must be sound: whenever it says no sample reaches another, the probe must agree. Every PyTorch corpus
case, buggy and fixed, is checked both ways."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import corpus
from shapecheck.adapters import torch as torch_adapter
from shapecheck.adapters.torch import tracer
from shapecheck.adapters.torch.batchflow import unproven_op
from shapecheck.adapters.torch.probe import probe_batch_mixing
from shapecheck.shapes import TensorMeta


def verdict(model: nn.Module, shape: tuple, dtype: str = "float32"):
    """(the first op not proven to keep samples apart, the probe's result)."""
    specs = [TensorMeta(shape, dtype)]
    primary = tracer.run_once(model, specs, shape[0], "test", {})
    alternate = tracer.run_once(model, [TensorMeta((shape[0] + 1, *shape[1:]), dtype)], shape[0] + 1, "test", {})
    probe, _ = probe_batch_mixing(model, specs)
    return unproven_op(primary, alternate, shape[0]), probe


class Apply(nn.Module):
    def __init__(self, function, inner: nn.Module | None = None):
        super().__init__()
        self.function, self.inner = function, inner or nn.Identity()

    def forward(self, x):
        return self.function(self.inner(x))


class SelfAttention(nn.Module):
    def __init__(self, batch_first: bool):
        super().__init__()
        self.attention = nn.MultiheadAttention(8, 2, batch_first=batch_first)

    def forward(self, x):
        return self.attention(x, x, x)[0]


MIXING = {
    "softmax over the batch": (Apply(lambda x: x.softmax(dim=0), nn.Linear(8, 4)), (4, 8)),
    "mean over the batch, broadcast back": (Apply(lambda x: x - x.mean(0, keepdim=True)), (4, 8)),
    "LSTM fed batch-first without batch_first": (Apply(lambda out: out[0], nn.LSTM(8, 6)), (4, 5, 8)),
    "view used as a transpose": (Apply(lambda x: x.view(x.shape[1], x.shape[0], -1).sum(0)), (4, 5, 8)),
    "roll along the batch": (Apply(lambda x: torch.roll(x, 1, 0)), (4, 8)),
    "rows picked by a tensor index": (Apply(lambda x: x[torch.arange(x.shape[0] - 1, -1, -1)]), (4, 8)),
    "rows picked by a list": (Apply(lambda x: x[list(range(x.shape[0] - 1, -1, -1))]), (4, 8)),
    "flip along the batch": (Apply(lambda x: x.flip(0)), (4, 8)),
    "attention over the batch (batch_first missing)": (SelfAttention(batch_first=False), (4, 5, 8)),
    "cumulative sum over the batch": (Apply(lambda x: x.cumsum(0)), (4, 8)),
    "einsum contracting the batch": (Apply(lambda x: torch.einsum("nf,mf->nm", x, x) @ x), (4, 8)),
}

SEPARATE = {
    "conv, batch norm, pool, linear": (nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                                                     nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 2)),
                                       (4, 3, 8, 8)),
    "batch-first attention": (SelfAttention(batch_first=True), (4, 5, 8)),
    "softmax over features": (Apply(lambda x: x.log_softmax(-1), nn.Linear(8, 3)), (4, 8)),
    "windows folded into the batch":
        (Apply(lambda x: x.view(x.shape[0] * 2, 3, 8).softmax(1).view(x.shape[0], 6, 8)), (4, 6, 8)),
    "einsum per sample": (Apply(lambda x: torch.einsum("ntf,nsf->nts", x, x)), (4, 5, 8)),
}


@pytest.mark.parametrize("name", MIXING)
def test_an_op_that_mixes_samples_is_left_to_the_probe(name):
    model, shape = MIXING[name]
    unproven, probe = verdict(model, shape)
    assert unproven is not None
    assert probe is not None, "the case does not mix samples: it tests nothing"


@pytest.mark.parametrize("name", SEPARATE)
def test_ops_that_keep_samples_apart_are_proven(name):
    model, shape = SEPARATE[name]
    unproven, probe = verdict(model, shape)
    assert unproven is None, f"{unproven.name} in `{unproven.layer}`"
    assert probe is None


def test_a_reshape_to_the_shape_of_another_sample_tensor_is_left_to_the_probe():
    unproven, _ = verdict(Apply(lambda x: x.view_as(x * 2)), (4, 8))
    assert unproven is not None and unproven.name == "view_as"


def test_a_proven_model_skips_the_probe(monkeypatch):
    calls = []
    monkeypatch.setattr(torch_adapter, "probe_batch_mixing", lambda *a, **k: calls.append(a) or (None, ""))
    model, shape = SEPARATE["conv, batch norm, pool, linear"]
    torch_adapter.trace(model, [TensorMeta(shape)], "test")
    assert not calls
    model, shape = MIXING["softmax over the batch"]
    torch_adapter.trace(model, [TensorMeta(shape)], "test")
    assert len(calls) == 1


@pytest.mark.slow   # every PyTorch corpus case, twice
def test_the_proof_never_contradicts_the_probe_on_the_corpus(monkeypatch):
    """Every PyTorch case, buggy and fixed, runs with the probe forced; a model proven to keep samples apart must
    never be caught mixing them."""
    traced = []

    def spy(primary, alternate, batch):
        traced.append((primary, unproven_op(primary, alternate, batch)))
        return primary.ops[0] if primary.ops else True   # not proven: the probe runs

    monkeypatch.setattr(torch_adapter, "unproven_op", spy)
    files = corpus.case_files("pytorch")
    if not files:
        pytest.skip("no corpus")
    for path in files:
        corpus.run_case(path)
    contradicted = [p.target for p, unproven in traced if unproven is None and p.probe is not None]
    proven = sum(unproven is None for _, unproven in traced)
    mixing = sum(p.probe is not None for p, _ in traced)
    assert not contradicted
    assert proven > len(traced) // 2 and mixing >= 3, (proven, mixing, len(traced))


class SamplesInEval(nn.Module):
    """A VAE-like decoder that samples its latent code in eval mode too: random, but per sample."""

    def __init__(self):
        super().__init__()
        self.mean, self.decode = nn.Linear(16, 4), nn.Linear(4, 3)

    def forward(self, x):
        mean = self.mean(x)
        return self.decode(mean + torch.randn_like(mean))


def test_noise_left_on_in_eval_mode_is_not_batch_mixing():
    model = SamplesInEval()
    before = torch.random.get_rng_state()
    probe, _ = probe_batch_mixing(model, [TensorMeta((2, 16))])
    assert probe is None
    assert torch.equal(torch.random.get_rng_state(), before)   # the caller's RNG is left as it was
