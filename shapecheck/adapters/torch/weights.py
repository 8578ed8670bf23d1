"""Weights shapecheck keeps off the heap: a factory's parameters go to the meta device while it runs, and get real,
seeded values only when a real pass needs them and the model is small enough (`materialize`)."""

from __future__ import annotations

import contextlib
import weakref

import torch
from torch import nn

from shapecheck.adapters.torch.probe import MAX_PARAMETERS


@contextlib.contextmanager
def building_without_weights():
    """While a factory runs, every parameter a module registers moves to the meta device: no weight memory is kept
    and no initialisation runs on real data (`nn.Linear` initialises its weight after registering it). Buffers stay
    real: BatchNorm statistics, attention masks and position ids are small, and a real pass needs their values."""
    original = nn.Module.register_parameter

    def register(self, name, param):
        if param is not None and param.device.type != "meta" and \
                not isinstance(param, nn.parameter.UninitializedParameter):
            param = nn.Parameter(param.detach().to("meta"), requires_grad=param.requires_grad)
            _WITHOUT_WEIGHTS.add(self)
        original(self, name, param)

    nn.Module.register_parameter = register
    try:
        yield
    finally:
        nn.Module.register_parameter = original


# Modules whose parameters shapecheck moved to the meta device: only those it gives real weights later. A model the
# user built on the meta device stays as it is.
_WITHOUT_WEIGHTS: weakref.WeakSet = weakref.WeakSet()


def held_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules the model holds in plain lists, tuples or dicts (`self.hids = [nn.Linear(...)]`), by attribute path
    (`hids[0]`): they run in forward, but `model.parameters()` does not list their weights."""
    registered = set(model.modules())
    held: dict[str, nn.Module] = {}
    for owner_name, owner in model.named_modules():
        for attribute, value in vars(owner).items():
            if attribute.startswith("_") or not isinstance(value, (list, tuple, dict)):
                continue
            items = value.items() if isinstance(value, dict) else enumerate(value)
            prefix = f"{owner_name}.{attribute}" if owner_name else attribute
            for key, item in items:
                if isinstance(item, nn.Module) and item not in registered:
                    held[f"{prefix}[{key!r}]" if isinstance(key, str) else f"{prefix}[{key}]"] = item
    return held


def every_module(model: nn.Module) -> list[nn.Module]:
    """The model's modules and those it holds outside its registry, each once."""
    found = dict.fromkeys(model.modules())
    for module in held_modules(model).values():
        found.update(dict.fromkeys(module.modules()))
    return list(found)


def materialize(model: nn.Module) -> bool:
    """Give the parameters shapecheck moved to the meta device real storage, freshly initialised (each module's
    `reset_parameters`, else a normal(0, 0.02) fill), when the model is small enough to run: what the probe and a
    real pass need. False when the model still has meta parameters."""
    modules = every_module(model)
    parameters = [p for module in modules for p in module.parameters(recurse=False)]
    sized = [p for p in parameters if not isinstance(p, nn.parameter.UninitializedParameter)]
    ours = [module for module in modules if module in _WITHOUT_WEIGHTS]
    if ours and sum(p.numel() for p in sized) <= MAX_PARAMETERS:
        with torch.random.fork_rng():   # seeded, so every run measures the same weights; the caller's RNG kept
            torch.manual_seed(0)
            for module in ours:
                _materialize_module(module)
                _WITHOUT_WEIGHTS.discard(module)
    return not any(p.is_meta for module in modules for p in module.parameters(recurse=False)
                   if not isinstance(p, nn.parameter.UninitializedParameter))


def own_copy(model: nn.Module):
    """A copy shapecheck made (an edited model) is its own to give real weights, whatever the original's were."""
    _WITHOUT_WEIGHTS.update(module for module in every_module(model)
                            if any(p.is_meta for p in module.parameters(recurse=False)))


def _materialize_module(module: nn.Module):
    fresh = [name for name, p in module.named_parameters(recurse=False)
             if p.is_meta and not isinstance(p, nn.parameter.UninitializedParameter)]
    for name in fresh:
        old = getattr(module, name)
        setattr(module, name, nn.Parameter(torch.empty(old.shape, dtype=old.dtype), requires_grad=old.requires_grad))
    if fresh:
        _initialise(module, fresh)


def _initialise(module: nn.Module, names: list[str]):
    reset = getattr(module, "reset_parameters", None)
    try:
        if callable(reset):
            reset()
            return
    except Exception:   # a custom reset that needs more than its own parameters: fill them instead
        pass
    with torch.no_grad():
        for name in names:
            getattr(module, name).normal_(0, 0.02)
