"""PyTorch hooks for `shapecheck run` / `watch()`: find the first loss evaluation of a training script and the model
call that fed it, then check that step with its real tensors."""

from __future__ import annotations

import functools
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from shapecheck.adapters.sources import user_frame
from shapecheck.adapters.torch.post import PostProcessing, learn
from shapecheck.adapters.torch.tracer import TORCH_DIR
from shapecheck.heads import output_name
from shapecheck.losses import FUNCTIONAL_LOSSES, WEIGHT_OPTIONS
from shapecheck.run.distributed import unwrapped

_FUNCTIONAL_OPTIONS = ("ignore_index", "label_smoothing", "reduction", *WEIGHT_OPTIONS)


def _is_loss_module(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.loss._Loss) or type(module).__name__.endswith(("Loss", "Criterion"))


class TorchSpy:
    """Tracks top-level module calls (the model) and the losses computed outside them. Every loss the first step
    computes on the model's output is a head of that step (a multi-task loss, an auxiliary output's loss); the
    step is checked when it calls `backward`, or earlier when a loss raises or the model runs again."""

    def __init__(self, state):
        self.state = state
        self.depth = 0
        self.last_call = None      # (module, args, kwargs, output) of the last top-level model call
        self.in_loss = False
        self.done = False
        self.heads: list[tuple] = []   # (loss, target, post) of each loss on `last_call`'s output, in order
        self.where = None              # the line of the step's first loss

    def install(self):
        original_call = nn.Module.__call__
        spy = self

        def call(module, *args, **kwargs):
            if spy.done or spy.in_loss or not spy.state.waiting:
                return original_call(module, *args, **kwargs)
            if spy.depth == 0 and _is_loss_module(module):
                return spy.loss(module, args, kwargs, lambda: original_call(module, *args, **kwargs))
            return spy.model_call(module, args, kwargs, lambda: original_call(module, *args, **kwargs))

        nn.Module.__call__ = call
        originals = {name: getattr(F, name) for name in FUNCTIONAL_LOSSES}
        for name, function in originals.items():
            setattr(F, name, self._functional(name, function))
        original_backward = torch.Tensor.backward

        def backward(tensor, *args, **kwargs):
            self.step_ends()
            return original_backward(tensor, *args, **kwargs)

        torch.Tensor.backward = backward

        def remove():
            nn.Module.__call__ = original_call
            torch.Tensor.backward = original_backward
            for name, function in originals.items():
                setattr(F, name, function)
            self.script_ends()
        return remove

    def _functional(self, name: str, function):
        @functools.wraps(function)
        def loss(*args, **kwargs):
            if self.done or self.in_loss or self.depth or not self.state.waiting:
                return function(*args, **kwargs)
            options = tuple((k, _detached(kwargs[k])) for k in _FUNCTIONAL_OPTIONS if kwargs.get(k) is not None)
            return self.loss((FUNCTIONAL_LOSSES[name], options), args, kwargs, lambda: function(*args, **kwargs))
        return loss

    def model_call(self, module, args, kwargs, forward):
        top = self.depth == 0
        if top:
            self.step_ends()   # the model runs again: the losses so far were the step's
        self.depth += 1
        try:
            output = forward()
        except Exception:
            self.depth -= 1
            if top and not self.done:   # the forward pass raised: diagnose it with the batch that caused it
                self._check(module, args, kwargs, None, None, None)
            raise
        self.depth -= 1
        if top:
            self.last_call = (module, args, kwargs, output)
            carried = getattr(output, "loss", None)
            if isinstance(carried, torch.Tensor) and "labels" in kwargs and not self.done:
                self._model_computed_loss(module, args, kwargs, output)
        return output

    def loss(self, loss, args, kwargs, compute):
        tensors = [a for a in args if isinstance(a, torch.Tensor)] + \
            [kwargs[k] for k in ("input", "target") if isinstance(kwargs.get(k), torch.Tensor)]
        if len(tensors) < 2 or self.last_call is None or not torch.is_grad_enabled():
            return compute()   # not a loss on a model's output (or no model ran yet, or an evaluation)
        prediction, target = tensors[:2]
        self.heads.append((loss, target, learn(self.last_call[3], prediction)))
        self.where = self.where or user_frame((TORCH_DIR,), depth=2)
        self.in_loss = True
        try:
            with warnings.catch_warnings():   # a broadcast the check reports in its own words
                warnings.simplefilter("ignore", UserWarning)
                return compute()
        except Exception:
            self.step_ends()   # the loss raised: the step ends here
            raise
        finally:
            self.in_loss = False

    def step_ends(self):
        """Check the step's losses, if it computed any and none was checked yet."""
        if self.heads and not self.done:
            model, model_args, model_kwargs, _ = self.last_call
            self._check(model, model_args, model_kwargs, *_step_heads(self.heads), where=self.where)

    def script_ends(self):
        """A script that computed losses but never called `backward` (an evaluation, a custom step): its losses."""
        from shapecheck.run import StopTraining

        try:
            self.step_ends()
        except StopTraining:
            pass

    def _model_computed_loss(self, model, args, kwargs, output):
        """A Hugging Face model given `labels` computes its loss inside forward: the loss its config implies."""
        inputs = {k: v for k, v in kwargs.items() if k != "labels"}
        self._check(model, args, inputs, _config_loss(model), kwargs["labels"], learn(output, output.logits)
                    if hasattr(output, "logits") else None)

    def _check(self, model, args, kwargs, loss, target, post, where=None):
        self.done = True
        model = unwrapped(model)   # a DDP/FSDP wrapper: the user's model is what `check` would see
        where = where or user_frame((TORCH_DIR,), depth=3)
        name, options = loss if isinstance(loss, tuple) else (loss, None)
        inputs = dict(kwargs) if kwargs and not args else (list(args) if not kwargs else None)
        if inputs is None:   # positional and keyword tensors: the keywords as keyword inputs after the positional
            inputs = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
        report = self.state.check(model, input=_detached(inputs), loss=name, labels=_detached(target),
                                  target=_label(model, where), sites=self.state.sites, post=post,
                                  loss_options=options, loss_site=where)
        self.state.checked(report, str(where) if where else "")


class StepOutputs:
    """What a step with several losses fed them, by head name: each loss's input, selected and reshaped from the
    model's output as the script did (`PostProcessing`)."""

    def __init__(self, posts: dict[str, PostProcessing | None]):
        self.posts = posts

    def __call__(self, output):
        return {name: post(output) if post is not None else output for name, post in self.posts.items()}

    def for_head(self, name: str):
        """What one head's loss read (verification trains one head at a time)."""
        post = self.posts.get(name)
        return post if post is not None else (lambda output: output)


def _step_heads(heads: list[tuple]) -> tuple:
    """(loss, target, post) for `_check`: the one loss as it is, or per head name when the step computed several."""
    if len(heads) == 1:
        return heads[0]
    names = _head_names([post for _, _, post in heads])
    losses = {name: loss for name, (loss, _, _) in zip(names, heads)}
    targets = {name: target for name, (_, target, _) in zip(names, heads)}
    return losses, targets, StepOutputs({name: post for name, (_, _, post) in zip(names, heads)})


def _head_names(posts: list) -> list[str]:
    """The output each loss read (`aux`, `logits`), or `loss 2` when two read the same one."""
    names = [output_name(post.leaf) if post is not None and post.leaf else "" for post in posts]
    return [name if name and names.count(name) == 1 else f"loss {index + 1}" for index, name in enumerate(names)]


def _config_loss(model) -> str:
    """The loss a Hugging Face model computes for its config (`problem_type`, `num_labels`)."""
    config = getattr(model, "config", None)
    problem, count = getattr(config, "problem_type", None), getattr(config, "num_labels", 2)
    return {"regression": "MSELoss", "multi_label_classification": "BCEWithLogitsLoss"}.get(
        problem, "MSELoss" if count == 1 else "CrossEntropyLoss")


def _detached(value):
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, dict):
        return {k: _detached(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_detached(v) for v in value]
    return value


def _label(model, where) -> str:
    return f"{type(model).__name__} (trained at {where})" if where else type(model).__name__


def install_trainer(state):
    """Hugging Face `Trainer.compute_loss`: its first call is the training step to check."""
    from transformers import Trainer

    original = Trainer.compute_loss

    @functools.wraps(original)
    def compute_loss(self, model, inputs, *args, **kwargs):
        if state.waiting and "labels" in inputs:
            unwrapped = getattr(model, "module", model)
            name = _config_loss(unwrapped)
            features = {k: v for k, v in inputs.items() if k != "labels"}
            where = user_frame((TORCH_DIR,), depth=2)
            where = f"{where} (Trainer.compute_loss)" if where else "Trainer.compute_loss"
            report = state.check(unwrapped, input=_detached(features), loss=name, labels=_detached(inputs["labels"]),
                                 target=f"{type(unwrapped).__name__} (trained at {where})", sites=state.sites)
            state.checked(report, where)
        return original(self, model, inputs, *args, **kwargs)

    Trainer.compute_loss = compute_loss
    return lambda: setattr(Trainer, "compute_loss", original)
