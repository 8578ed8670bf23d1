"""Weights shapecheck keeps off the heap: a factory's parameters go to the meta device while it runs, and get real,
seeded values only when a real pass needs them and the model is small enough (`materialize`)."""

from __future__ import annotations

import contextlib
import weakref

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from shapecheck.adapters.torch.probe import MAX_PARAMETERS

KEPT_VALUES = 1_000_000   # values of one parameter kept from the build to give it later (a cls token, a mask)


@contextlib.contextmanager
def building_without_weights():
    """While a factory runs, every parameter a module registers moves to the meta device: no weight memory is kept
    and no initialisation runs on real data (`nn.Linear` initialises its weight after registering it). Buffers stay
    real: BatchNorm statistics, attention masks and position ids are small, and a real pass needs their values."""
    original = nn.Module.register_parameter

    def register(self, name, param):
        if param is not None and param.device.type != "meta" and \
                not isinstance(param, nn.parameter.UninitializedParameter):
            values = param.detach()
            param = nn.Parameter(values.to("meta"), requires_grad=param.requires_grad)
            # a small parameter made with its values (`nn.Parameter(torch.zeros(1, 1, 768))`) keeps them for later
            param._shapecheck_writes = [(torch.Tensor.copy_, (values,), {}, None)] \
                if values.numel() <= KEPT_VALUES else []
            _WITHOUT_WEIGHTS.add(self)
        original(self, name, param)

    nn.Module.register_parameter = register
    writes = _InitWrites()
    initialisers = {name: function for name, function in vars(nn.init).items()
                    if name.endswith("_") and not name.startswith("_") and callable(function)}
    for name, function in initialisers.items():   # some skip meta tensors before any write: record the call
        setattr(nn.init, name, writes.recording(function))
    try:
        with writes:
            yield
    finally:
        nn.Module.register_parameter = original
        for name, function in initialisers.items():
            setattr(nn.init, name, function)


class _InitWrites(TorchFunctionMode):
    """The factory's in-place writes to the meta parameters (`nn.init.zeros_(m.weight)`, `m.weight.data.normal_(0,
    0.02)`, a layer's own `reset_parameters`), kept on each parameter to be replayed when it gets real storage: the
    audit then measures the model as the user initialised it. A write that cannot be replayed (from another meta
    tensor, through a view) leaves the parameter to its module's default initialisation."""

    def __init__(self):
        super().__init__()
        self.inside_initialiser = False

    def recording(self, initialiser):
        """`nn.init.trunc_normal_` and others return early on a meta tensor: the call itself is the write."""
        def recorded(*args, **kwargs):
            if self.inside_initialiser:
                return initialiser(*args, **kwargs)
            self._record(initialiser, args, kwargs)
            self.inside_initialiser = True
            try:
                return initialiser(*args, **kwargs)
            finally:
                self.inside_initialiser = False
        return recorded

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if not self.inside_initialiser:
            self._record(func, args, kwargs, result)
        return result

    @staticmethod
    def _record(func, args, kwargs, result=None):
        # `nn.init` functions dispatch with the tensor as a keyword: `kaiming_uniform_(tensor=w, a=...)`
        key = None if args else next(iter(kwargs), None)
        target = args[0] if args else kwargs.get(key)
        parameter = getattr(target, "_shapecheck_owner", target) if isinstance(target, torch.Tensor) else None
        writes = getattr(parameter, "_shapecheck_writes", None)
        if writes is None:
            return
        name = getattr(func, "__name__", "")
        if name == "__get__" and isinstance(result, torch.Tensor) and result.is_meta:   # `.data`: the same values
            result._shapecheck_owner = parameter
        elif name.endswith("_") and not name.startswith("_"):
            rest = {k: v for k, v in kwargs.items() if k != key}
            given = (*args[1:], *rest.values())
            replayable = all(not isinstance(a, torch.Tensor) or (not a.is_meta and a.numel() <= KEPT_VALUES)
                             for a in given)
            write = (func, args[1:], rest, key)
            # a write of every value makes the earlier ones moot (the `torch.empty` a layer was made from)
            earlier = [] if name.rstrip("_") in _OVERWRITES else writes
            parameter._shapecheck_writes = [*earlier, write] if replayable else None


_OVERWRITES = {"uniform", "normal", "zero", "zeros", "ones", "fill", "constant", "copy", "kaiming_uniform",
               "kaiming_normal", "xavier_uniform", "xavier_normal", "trunc_normal", "orthogonal", "eye", "dirac",
               "sparse"}


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
    """Give the parameters shapecheck moved to the meta device (the model's own and those of layers it holds in plain
    containers) real storage, initialised as the factory wrote (`_InitWrites`, else each module's
    `reset_parameters`), seeded, when the model is small enough to run: what the probe and a real pass need. False
    when the model still has meta parameters."""
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
    """Real storage for the module's meta parameters, with the factory's writes replayed where they were kept, and
    the module's own initialisation for the others."""
    fresh = [name for name, p in module.named_parameters(recurse=False)
             if p.is_meta and not isinstance(p, nn.parameter.UninitializedParameter)]
    writes = {name: getattr(getattr(module, name), "_shapecheck_writes", None) for name in fresh}
    for name in fresh:
        old = getattr(module, name)
        setattr(module, name, nn.Parameter(torch.empty(old.shape, dtype=old.dtype), requires_grad=old.requires_grad))
    if any(not writes[name] for name in fresh):
        _initialise(module, fresh)
    with torch.no_grad():
        for name in fresh:
            for func, args, kwargs, key in writes[name] or ():
                target = getattr(module, name)
                func(target, *args, **kwargs) if key is None else func(*args, **{key: target, **kwargs})


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
