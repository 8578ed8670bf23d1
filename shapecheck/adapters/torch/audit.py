"""The training-signal audit of a PyTorch module (`shapecheck.audit`): a real forward and backward pass on a tiny
seeded batch, in training mode, as the step computes it (eval mode may take another path: LeViT reads cached
attention biases, batch norm's initial statistics can shrink an untrained network's signal to float noise). Every
pass is seeded: the two passes compared for input dependence draw the same dropout masks, and each training step
of the copy draws its own, so a layer that dropout or LayerDrop skipped once is not taken for a cut.

Whatever looks wrong at initialisation (parameters with no gradient, an output that ignores the input) is measured
again on a copy after a few Adam steps: a deliberately zero-initialised head or residual scale gets its gradient
after one step, a detached branch never does. The user's model is left as it was: its modes, buffers and `.grad`.
"""

from __future__ import annotations

import copy
import dataclasses
import statistics
import time
import warnings
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from shapecheck.adapters import keep_triton_out_after_tensorflow
from shapecheck.adapters.sources import user_frame
from shapecheck.adapters.torch.probe import MAX_PARAMETERS
from shapecheck.adapters.torch.tracer import (
    TORCH_DIR,
    choose_output,
    example_tensors,
    make_inputs,
    preserved,
    set_train_mode,
    tensor_leaves,
)
from shapecheck.adapters.torch.weights import held_modules, materialize
from shapecheck.audit import (
    FIT_LEARNING_RATE,
    FIT_MAX_PARAMETERS,
    FIT_MAX_VALUES,
    FIT_MEMORISED,
    FIT_STEPS,
    MAX_SAMPLES,
    STEPS,
    Audit,
    AuditHead,
    Constant,
    Fit,
    HeadAudit,
    OutputValues,
    Stop,
    Symmetric,
    Unreached,
    Unregistered,
    audit_labels,
    stand_in_kind,
)
from shapecheck.ops import canonical
from shapecheck.oracle import first_line, void_marker
from shapecheck.shapes import TensorMeta

FRESH_SAMPLES = 64   # the second, larger batch that may reach a layer only some samples use

# ops whose output never depends on their input's values: a new tensor shaped like it
_SHAPED_LIKE = {"zeros_like", "ones_like", "empty_like", "full_like", "new_zeros", "new_ones", "new_full",
                "new_empty", "new_tensor", "size", "dim", "numel"}


def audit(model: nn.Module, specs: list[TensorMeta], example, heads: Sequence[AuditHead]) -> tuple[Audit | None, str]:
    """The audit's measurements, or None and a note saying why it did not run."""
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        return None, f"training-signal audit skipped: {count / 1e6:.0f}M parameters (limit " \
                     f"{MAX_PARAMETERS // 10**6}M)"
    if isinstance(model, torch.jit.ScriptModule) or not materialize(model):
        return None, "training-signal audit skipped: the model cannot run with real weights here"
    started = time.perf_counter()
    grads = {p: p.grad for p in model.parameters()}
    try:
        with torch.random.fork_rng(), preserved(model), warnings.catch_warnings():   # seeded; the caller's RNG kept
            args, kwargs, full, batch = _inputs(specs, example)
            warnings.simplefilter("ignore")
            set_train_mode(model, True)
            fresh = (lambda: make_inputs(specs, FRESH_SAMPLES, real=True)) if example is None else None
            found = _measure(model, args, kwargs, full, batch, heads, fresh)
    except Exception as exc:   # best effort: the static checks already ran
        return None, f"training-signal audit skipped: the real forward pass raised {type(exc).__name__}"
    finally:
        for parameter, grad in grads.items():
            parameter.grad = grad
    found.samples, found.seconds, found.made_up_inputs = batch, time.perf_counter() - started, example is None
    return found, ""


def _inputs(specs: list[TensorMeta], example) -> tuple[list, dict, int, int]:
    full = example.batch if example is not None else specs[0].shape[0]
    batch = min(full, MAX_SAMPLES)
    torch.manual_seed(0)
    if example is not None:
        args, kwargs = example_tensors(example, batch)
    else:
        args, kwargs = make_inputs(specs, batch, real=True), {}
    return args, kwargs, full, batch


def _measure(model: nn.Module, args, kwargs, full: int, batch: int, heads: Sequence[AuditHead],
             fresh: Callable[[], list] | None) -> Audit:
    """`fresh` makes another random batch (None when the inputs are the user's values, which cannot be invented)."""
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad and p.numel()}
    modules = _Modules(model)
    recorder = _Recorder(modules, frozenset(id(p) for p in model.parameters()))
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    with modules, recorder:
        output = model(*args, **kwargs)
    labels = {head.output or "": _labels(head, _prediction(output, head), full, batch) for head in heads}
    found = Audit(heads={head.output or "": _head_audit(head, _prediction(output, head), labels) for head in heads})
    total = _total_loss(output, heads, labels)
    if not trainable:   # every parameter frozen: the step trains nothing
        losses = [head.loss_value for head in found.heads.values() if head.loss_value is not None]
        found.fit = Fit(batch, 0, sum(losses), sum(losses), 0) if losses else None
        return found
    if total is None:
        return found
    total.backward()
    found.unregistered = _unregistered(model, recorder.foreign)
    weakest = _weakest(trainable)
    # a parameter no op read is unused in this mode (wav2vec2's `masked_spec_embed` serves training-time masking
    # only): SC207's concern, not a cut gradient
    silent = {name for name, p in trainable.items() if id(p) in recorder.read and not _has_gradient(p)}
    constant = [head for head in heads if not _moves(model, args, kwargs, head, batch)]
    alike = {name for name, p in trainable.items() if _identical_rows(p)}   # a constant initialisation
    if not silent and not constant and not alike:
        found.fit = _fit_one_batch(model, args, kwargs, heads, labels, batch, weakest, recorder.computed)
        return found
    trained = _trained_copy(model, args, kwargs, heads, labels, silent)
    still = dict(trained.model.named_parameters())
    alike = [name for name in trainable if name in alike and _identical_rows(still[name])]
    if alike:
        found.symmetric = Symmetric(tuple(dict.fromkeys(name.rpartition(".")[0] for name in alike)),
                                    trainable[alike[0]].shape[0], STEPS)
    silent &= trained.silent
    silent -= _reaching_other_outputs(trained.model, args, kwargs, silent)
    silent -= _reached_by_other_samples(trained.model, fresh, heads, full, batch, silent)
    if silent:
        owners = dict.fromkeys(name.rpartition(".")[0] for name in trainable if name in silent)
        whole = any(all(name in silent for name in trainable if name.rpartition(".")[0] == owner) for owner in owners)
        found.unreached = Unreached(
            layers=tuple(owners), values=sum(trainable[name].numel() for name in silent),
            total=sum(p.numel() for p in trainable.values()), steps=STEPS, stop=recorder.stop(),
            partial=() if whole else tuple(name for name in trainable if name in silent))
    for head in constant:
        if not _moves(trained.model, args, kwargs, head, batch):
            key = head.output or ""
            found.heads[key] = _with_constant(found.heads[key], model, args, kwargs, head, batch)
    if found.unreached is None and found.symmetric is None and not any(head.constant for head in found.heads.values()):
        found.fit = _fit_one_batch(model, args, kwargs, heads, labels, batch, weakest, recorder.computed)
    return found


def _unregistered(model: nn.Module, foreign: dict[int, tuple]) -> Unregistered | None:
    """The parameters outside the model's registry that the loss trains, their `.grad` set back as it was."""
    trained = [(parameter, source, layer) for parameter, _, source, layer in foreign.values()
               if _has_gradient(parameter)]
    for parameter, grad, _, _ in foreign.values():
        parameter.grad = grad
    if not trained:
        return None
    paths = {id(p): path for path, module in held_modules(model).items() for p in module.parameters()}
    held = tuple(dict.fromkeys(paths[id(p)] for p, _, _ in trained if id(p) in paths))
    first, source, layer = trained[0]
    # the attribute that holds them (`hids`), else the module whose forward built them
    where = paths[id(first)].partition("[")[0] if id(first) in paths else layer
    return Unregistered(held, any(id(p) not in paths for p, _, _ in trained), sum(p.numel() for p, _, _ in trained),
                        source, where)


def _identical_rows(parameter: torch.Tensor) -> bool:
    """Two or more units (rows of a weight) that hold the same values."""
    if parameter.dim() < 2 or parameter.shape[0] < 2:
        return False
    rows = parameter.detach().flatten(1)
    return bool((rows - rows[:1]).abs().max() <= 1e-7 * (1 + rows.abs().max()))


def _weakest(trainable: dict[str, nn.Parameter]) -> tuple[str, float] | None:
    """The layer whose weights get the smallest gradient for their size at initialisation, and that ratio against
    the median layer's, when it is under 1e-4 of it: where a signal that still flows fades to nothing."""
    ratios = {name: float(p.grad.norm() / p.norm()) for name, p in trainable.items()
              if p.dim() >= 2 and p.grad is not None and float(p.norm()) > 0}
    if len(ratios) < 3:
        return None
    median = statistics.median(ratios.values())
    name, ratio = min(ratios.items(), key=lambda item: item[1])
    return (name.rpartition(".")[0], ratio / median) if median > 0 and ratio < 1e-4 * median else None


def _fit_one_batch(model: nn.Module, args, kwargs, heads: Sequence[AuditHead], labels: dict, batch: int,
                   weakest: tuple[str, float] | None, computed: int) -> Fit | None:
    """The loss of a copy trained seeded Adam steps on the audit's samples until it halves (a model that memorises
    stops early) or `FIT_STEPS` have run, for small models whose every parameter trains (a frozen backbone limits
    what the head can memorise by design)."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable > FIT_MAX_PARAMETERS or computed > FIT_MAX_VALUES or \
            any(not p.requires_grad for p in model.parameters()):
        return None
    # random stand-ins are memorisable one per sample, not one per pixel: a local model cannot fit noise maps
    if any(not real and target is not None and target.dim() > 2 for target, real in labels.values()):
        return None
    duplicate = _copy(model)
    optimizer = torch.optim.Adam([p for p in duplicate.parameters() if p.requires_grad], lr=FIT_LEARNING_RATE)
    losses = []
    for step in range(FIT_STEPS):
        torch.manual_seed(step)
        optimizer.zero_grad(set_to_none=True)
        total = _total_loss(duplicate(*args, **kwargs), heads, labels)
        if total is None:
            return None
        losses.append(float(total))
        if min(losses[-5:]) <= FIT_MEMORISED * losses[0]:
            break
        total.backward()
        optimizer.step()
    set_train_mode(duplicate, False)   # what it memorised, without dropout's or LayerDrop's noise
    with torch.no_grad():
        memorised = _total_loss(duplicate(*args, **kwargs), heads, labels, evaluating=True)
    final = min(losses[-5:] + ([float(memorised)] if memorised is not None else []))
    return Fit(batch, len(losses), losses[0], final, trainable, weakest)


def _prediction(output, head: AuditHead) -> torch.Tensor | None:
    post = head.post(output) if head.post is not None else output
    leaves = dict(tensor_leaves(post))
    path = head.output if head.output in leaves else choose_output(list(leaves.items()))
    return leaves.get(path) if path is not None else None


def _labels(head: AuditHead, prediction: torch.Tensor | None, full: int, batch: int
            ) -> tuple[torch.Tensor | None, bool]:
    """The user's labels for the audit's samples (the first `batch` of the check's `full`), else valid stand-ins the
    loss accepts; and whether they are the user's."""
    shape, per_sample = audit_labels(head.labels, full, batch)
    if head.labels.array is not None:
        values = torch.as_tensor(head.labels.array)
        return (values[:batch] if per_sample else values), True
    if prediction is None or not shape:
        return None, False
    generator = torch.Generator().manual_seed(0)
    axis = head.loss.class_axis if prediction.dim() > 1 else 0
    classes = prediction.shape[axis] if prediction.dim() > 1 else 2
    kind = stand_in_kind(head.loss)
    if kind == "class_ids":
        return torch.randint(0, classes, shape, generator=generator), False
    if kind == "distribution":
        return torch.softmax(torch.randn(prediction.shape, generator=generator), dim=axis), False
    if kind == "binary":
        return torch.randint(0, 2, shape, generator=generator).float(), False
    return torch.randn(shape, generator=generator), False


def _loss_function(head: AuditHead, prediction: torch.Tensor | None):
    """The head's loss as the oracle builds it: class ids of a void marker (255 in VOC masks) are ignored."""
    loss_class = getattr(nn, head.loss.name, None)
    if loss_class is None or head.loss.framework not in ("torch", "onnx"):
        return None
    options = dict(head.loss.options)
    if head.loss.wants_class_indices and "ignore_index" not in options and prediction is not None and \
            prediction.dim() > 1:
        marker = void_marker(head.labels.array, prediction.shape[head.loss.class_axis])
        options.update({"ignore_index": int(marker)} if marker is not None else {})
    return loss_class(**options)


def _head_audit(head: AuditHead, prediction: torch.Tensor | None, labels: dict) -> HeadAudit:
    if prediction is None:
        return HeadAudit()
    values = _output_values(prediction.detach(), head)
    target, real = labels[head.output or ""]
    function = _loss_function(head, prediction)
    if function is None or target is None:
        return HeadAudit(values=values)
    try:
        with torch.no_grad():
            value = float(function(prediction.detach(), target))
    except Exception as exc:
        return HeadAudit(values=values, loss_error=f"{type(exc).__name__}: {first_line(exc)}",
                         labels_real=real)
    return HeadAudit(values=values, loss_value=value, labels_real=real)


def _output_values(prediction: torch.Tensor, head: AuditHead) -> OutputValues:
    values = prediction.float()
    if not values.numel():
        return OutputValues(0.0, 0.0, 0)
    axis = head.loss.class_axis if values.dim() > 1 else None
    low, high, zeros = float(values.min()), float(values.max()), float((values == 0).float().mean())
    if axis is None:
        return OutputValues(low, high, 1, zeros=zeros)
    sums, exp_sums = values.sum(axis), values.exp().sum(axis)
    return OutputValues(low, high, values.shape[axis], (float(sums.min()), float(sums.max())),
                        (float(exp_sums.min()), float(exp_sums.max())), zeros)


def _total_loss(output, heads: Sequence[AuditHead], labels: dict, evaluating: bool = False) -> torch.Tensor | None:
    """The sum of the heads' losses that compute and need a gradient: what a training step would backpropagate
    (`evaluating`: every head's, gradient or not)."""
    total = None
    for head in heads:
        prediction = _prediction(output, head)
        function = _loss_function(head, prediction)
        target = labels[head.output or ""][0]
        if prediction is None or function is None or target is None or not (prediction.requires_grad or evaluating):
            continue
        try:
            value = function(prediction, target)
        except Exception:
            continue
        if torch.isfinite(value):
            total = value if total is None else total + value
    return total


def _has_gradient(parameter: torch.Tensor) -> bool:
    return parameter.grad is not None and bool(parameter.grad.abs().max() > 0)


class _Modules:
    """Which module is running: where an op ran, for messages."""

    def __init__(self, model: nn.Module):
        self.model, self.stack, self.handles = model, [], []

    def __enter__(self):
        for name, module in self.model.named_modules():
            self.handles.append(module.register_forward_pre_hook(lambda m, a, name=name: self.stack.append(name)))
            self.handles.append(module.register_forward_hook(self._leave))
        return self

    def _leave(self, module, args, output):   # returns None: a forward hook's value would replace the output
        self.stack.pop()

    @property
    def current(self) -> str:
        return self.stack[-1] if self.stack else ""

    def __exit__(self, *exc):
        for handle in self.handles:
            handle.remove()


class _Recorder(TorchFunctionMode):
    """Every op of the forward pass with its tensors, to find where the gradient stops after the backward pass."""

    def __init__(self, modules: _Modules, registered: frozenset[int] | None = None):
        super().__init__()
        self.modules = modules
        self.registered = registered   # ids of the model's own parameters (None: do not look for others)
        # the other parameters read: (parameter, its .grad before, the line and the module that read it)
        self.foreign: dict[int, tuple[nn.Parameter, object, object, str]] = {}
        self.grad_outside = True
        self.ops: list[tuple[str, str, list[torch.Tensor], list[torch.Tensor], object]] = []
        self.reached: set[int] = set()   # ids of tensors that got a non-zero gradient
        self.read: set[int] = set()      # ids of the parameters some op read

    @property
    def computed(self) -> int:
        """How many values the recorded pass computed."""
        return sum(tensor.numel() for _, _, _, outputs, _ in self.ops for tensor in outputs)

    def __enter__(self):
        self.grad_outside = torch.is_grad_enabled()   # a pass run under no_grad as a whole has no blocks to name
        return super().__enter__()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if name == "__get__":
            return result
        inputs = [t for _, t in tensor_leaves((args, kwargs))]   # with lists: an LSTM's flat weights
        self.read.update(id(t) for t in inputs if isinstance(t, nn.Parameter))
        for tensor in inputs:
            if self.registered is not None and isinstance(tensor, nn.Parameter) and tensor.requires_grad and \
                    id(tensor) not in self.registered:
                self.foreign.setdefault(id(tensor), (tensor, tensor.grad, user_frame((TORCH_DIR,), depth=2),
                                                     self.modules.current))
        outputs = [t for _, t in tensor_leaves(result)]
        if inputs and outputs:
            if self.grad_outside and not torch.is_grad_enabled():   # in a `torch.no_grad()` block: it stops them
                name = "no_grad"
            self.ops.append((name, self.modules.current, inputs, outputs, user_frame((TORCH_DIR,), depth=2)))
            for tensor in outputs:
                if tensor.requires_grad:
                    tensor.register_hook(self._reach(id(tensor)))
        return result

    def _reach(self, key: int):
        def hook(grad):
            if grad is not None and bool(grad.abs().max() > 0):
                self.reached.add(key)
        return hook

    def stop(self) -> Stop | None:
        """The first op an input of which needs a gradient and gets none while its output gets one (the gradient
        arrives and dies there); else the first whose output needs none (a `detach`, an `argmax`). In that order, a
        straight-through `x + (x.round() - x).detach()` inside a cut is not blamed for the cut around it."""
        for dies_here in (True, False):
            for name, layer, inputs, outputs, source in self.ops:
                if name in _SHAPED_LIKE:   # reads its input's shape, never its values
                    continue
                needing = [t for t in inputs if t.requires_grad]
                silent = [t for t in needing if not self._got(t)]
                # dies here: every input that needs a gradient gets none, though the output got one (an expert's
                # output stacked with the others, unused by this batch, is not where the signal stops)
                cut = len(silent) == len(needing) and any(id(t) in self.reached for t in outputs) if dies_here \
                    else not any(t.requires_grad for t in outputs)
                if silent and cut:
                    data = [t for t in silent if not isinstance(t, nn.Parameter)] or silent   # the tensor, not a weight
                    return Stop(canonical(name), name, layer, tuple(data[0].shape), source)
        return None

    def _got(self, tensor: torch.Tensor) -> bool:
        return _has_gradient(tensor) if tensor.is_leaf else id(tensor) in self.reached


class _Trained:
    def __init__(self, model: nn.Module, silent: set[str]):
        self.model, self.silent = model, set(silent)


def _trained_copy(model: nn.Module, args, kwargs, heads: Sequence[AuditHead], labels: dict,
                  silent: set[str]) -> _Trained:
    """A copy trained `STEPS` seeded Adam steps on the audit's batch; `silent` narrowed to the parameters that
    still get no gradient after every step."""
    keep_triton_out_after_tensorflow()   # the optimiser's first step imports dynamo, which imports triton if it can
    torch.manual_seed(0)
    trained = _Trained(_copy(model), silent)
    parameters = dict(trained.model.named_parameters())
    optimizer = torch.optim.Adam([p for p in parameters.values() if p.requires_grad], lr=1e-3)
    for step in range(STEPS + 1):   # measured at the copy's start and after each step
        if step:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(step)   # each step its own dropout masks and dropped layers
        total = _total_loss(trained.model(*args, **kwargs), heads, labels)
        if total is None:
            break
        total.backward()
        trained.silent = {name for name in trained.silent if not _has_gradient(parameters[name])}
    return trained


def _copy(model: nn.Module) -> nn.Module:
    """A deep copy. A module that holds tensors computed in a pass (a cache) cannot be deep-copied: `train()` clears
    most such caches (LeViT's attention biases), and the copy is in training mode anyway."""
    try:
        return copy.deepcopy(model)
    except RuntimeError:
        set_train_mode(model, False)
        set_train_mode(model, True)
        return copy.deepcopy(model)


def _reached_by_other_samples(model: nn.Module, fresh: Callable[[], list] | None, heads: Sequence[AuditHead],
                              full: int, batch: int, silent: set[str]) -> set[str]:
    """The silent parameters a larger batch of other samples reaches: a layer that only some samples use (an
    expert no sample of this batch was routed to) is data-dependent, not cut off. Labels are valid stand-ins."""
    if not silent or fresh is None:
        return set()
    torch.manual_seed(1)
    try:
        args = fresh()
        model.zero_grad(set_to_none=True)
        output = model(*args)
        stand_ins = [dataclasses.replace(head, labels=dataclasses.replace(head.labels, array=None)) for head in heads]
        labels = {head.output or "": _labels(head, _prediction(output, head), full, FRESH_SAMPLES)
                  for head in stand_ins}
        total = _total_loss(output, stand_ins, labels)
        if total is None:
            return set()
        total.backward()
    except Exception:   # a model built for one batch size: the audit's own batch is all there is
        return set()
    parameters = dict(model.named_parameters())
    return {name for name in silent if _has_gradient(parameters[name])}


def _reaching_other_outputs(model: nn.Module, args, kwargs, silent: set[str]) -> set[str]:
    """The silent parameters that reach an output no loss reads (an auxiliary head left without a loss): those
    are the pairing's to report, not a broken gradient."""
    if not silent:
        return set()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)
    leaves = [t for _, t in tensor_leaves(model(*args, **kwargs)) if t.requires_grad and t.is_floating_point()]
    if not leaves:
        return set()
    sum(t.float().mean() for t in leaves).backward()
    parameters = dict(model.named_parameters())
    return {name for name in silent if _has_gradient(parameters[name])}


def _rolled(tensors, batch: int):
    return [t.roll(1, 0) if isinstance(t, torch.Tensor) and t.dim() and t.shape[0] == batch else t for t in tensors]


def _moves(model: nn.Module, args, kwargs, head: AuditHead, batch: int) -> bool:
    """Whether the head's output changes when each sample gets another sample's input (True when no input can
    change: every sample is the same)."""
    if batch < 2:
        return True
    rolled_args = _rolled(args, batch)
    rolled_kwargs = dict(zip(kwargs, _rolled(list(kwargs.values()), batch)))
    if all(torch.equal(a, b) for a, b in zip([*args, *kwargs.values()], [*rolled_args, *rolled_kwargs.values()])
           if isinstance(a, torch.Tensor)):
        return True
    with torch.no_grad():
        torch.manual_seed(0)   # the same dropout masks in both passes: only the inputs differ
        first = _prediction(model(*args, **kwargs), head)
        torch.manual_seed(0)
        second = _prediction(model(*rolled_args, **rolled_kwargs), head)
    if first is None or second is None or first.shape != second.shape:
        return True
    return _moved(first, second)


def _moved(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Relative to the values' own scale: an untrained network may output values near 1e-13 that still
    follow the input, while an output that ignores it repeats exactly (a constant, a cast, a saturated unit)."""
    if not a.is_floating_point():
        return not torch.equal(a, b)
    a, b = a.double(), b.double()
    scale = torch.maximum(a.abs().max(), b.abs().max())
    return bool((a - b).abs().max() > 1e-6 * scale)


def _with_constant(measured: HeadAudit, model: nn.Module, args, kwargs, head: AuditHead, batch: int) -> HeadAudit:
    """The head's measurements with the fact that its output ignores the input, and the first op where the
    input's variation stops (an op whose input moved and whose output did not)."""
    passes = []
    for inputs, keywords in ((args, kwargs), (_rolled(args, batch), dict(zip(kwargs, _rolled(list(kwargs.values()),
                                                                                               batch))))):
        modules = _Modules(model)
        recorder = _Recorder(modules)
        torch.manual_seed(0)
        with torch.no_grad(), modules, recorder:
            prediction = _prediction(model(*inputs, **keywords), head)
        passes.append((recorder, prediction))
    (first, prediction), (second, _) = passes
    low, high = (float(prediction.min()), float(prediction.max())) if prediction is not None and \
        prediction.numel() else (0.0, 0.0)
    stop = _variation_stop(first, second)
    constant = Constant((low, high), *(stop or ("", "", None)))
    return HeadAudit(measured.values, measured.loss_value, measured.loss_error, measured.labels_real, constant)


def _variation_stop(first: _Recorder, second: _Recorder) -> tuple[str, str, object] | None:
    if len(first.ops) != len(second.ops):
        return None
    for (name, layer, inputs_a, outputs_a, source), (_, _, inputs_b, outputs_b, _) in zip(first.ops, second.ops):
        if name in _SHAPED_LIKE or any(a.shape != b.shape for a, b in zip(inputs_a + outputs_a, inputs_b + outputs_b)):
            continue
        if any(_moved(a, b) for a, b in zip(inputs_a, inputs_b)) and not any(
                _moved(a, b) for a, b in zip(outputs_a, outputs_b)):
            return canonical(name), layer, source
    return None
