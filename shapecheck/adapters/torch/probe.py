"""The batch-mixing probe: change one sample, see whether another sample's output moves.

No shape reveals an RNN fed [N, T, F] without `batch_first=True` (or any layer that mixes samples): only values do.
The probe runs the model for real, in eval mode, at batch 2, so it is skipped for very large models.
"""

from __future__ import annotations

import torch
from torch import nn

from shapecheck.adapters.torch.tracer import example_tensors, make_inputs, preserved, set_train_mode, tensor_leaves
from shapecheck.shapes import TensorMeta
from shapecheck.trace import ProbeResult

MAX_PARAMETERS = 100_000_000
RUN_SEED = 1


def probe_batch_mixing(model: nn.Module, specs: list[TensorMeta], example=None,
                       batch_axes: dict | None = None) -> tuple[ProbeResult | None, str]:
    """Return (result when samples mix, note when the probe was skipped). With example input values, only the
    floating-point inputs of sample 0 change: lengths, masks and ids must stay valid. `batch_axes` says, per
    module, on which axis of its input and output the samples are (a sequence-first LSTM has them on axis 1)."""
    count = sum(p.numel() for p in model.parameters())
    if count > MAX_PARAMETERS:
        return None, f"batch-mixing probe skipped: {count / 1e6:.0f}M parameters (limit {MAX_PARAMETERS // 10**6}M)"
    if any(p.device.type == "meta" for p in model.parameters()):
        return None, "batch-mixing probe skipped: the model's parameters are on the meta device"
    with torch.random.fork_rng():   # the caller's RNG is left as it was
        torch.manual_seed(0)
        return _probe(model, specs, example, batch_axes)


def _probe(model: nn.Module, specs: list[TensorMeta], example, batch_axes: dict | None
           ) -> tuple[ProbeResult | None, str]:
    base, keywords = example_tensors(example, 2) if example is not None else (make_inputs(specs, 2, real=True), {})
    changed = [_changed(t, example is None) for t in base]
    changed_keywords = {name: _changed(t, example is None) for name, t in keywords.items()}
    try:
        first, _ = _run(model, base, keywords, locate=False)
        second, _ = _run(model, changed, changed_keywords, locate=False)
        if first is None or first.shape[:1] != (2,) or second.shape != first.shape or not _moved(first[1], second[1]):
            return None, ""
        # samples mix: run again with hooks to find the first layer that mixes them
        _, first_layers = _run(model, base, keywords, locate=True, batch_axes=batch_axes)
        _, second_layers = _run(model, changed, changed_keywords, locate=True, batch_axes=batch_axes)
    except Exception as exc:  # the probe is best-effort: the symbolic trace already ran
        return None, f"batch-mixing probe skipped: the real forward pass raised {type(exc).__name__}"
    return ProbeResult(layer=_first_mixing_layer(first_layers, second_layers)), ""


def _changed(tensor: torch.Tensor, integers_too: bool) -> torch.Tensor:
    """A copy with sample 0 replaced (integers flipped only for random inputs: given ids must stay valid)."""
    tensor = tensor.clone()
    if tensor.dim() and tensor.shape[0] == 2:
        if tensor.dtype.is_floating_point:
            tensor[0] = torch.randn_like(tensor[0])
        elif integers_too:
            tensor[0] = 1 - tensor[0]
    return tensor


def _run(model: nn.Module, inputs: list[torch.Tensor], keywords: dict, locate: bool, batch_axes: dict | None = None):
    batch_axes = batch_axes or {}
    records: list[tuple[str, torch.Tensor | None, torch.Tensor | None]] = []
    # every module but the root: hooks fire as modules finish, innermost first, so the first one whose output
    # moved while its input did not is the smallest module that mixes samples
    names = {module: name for name, module in model.named_modules() if name} if locate else {}

    def hook(module, args, output):
        tensor_in = next((a for a in args if isinstance(a, torch.Tensor)), None)
        tensor_out = next((t for _, t in tensor_leaves(output)), None)
        axis_in, axis_out = batch_axes.get(names[module], (0, 0))
        records.append((names[module], _sample(tensor_in, axis_in), _sample(tensor_out, axis_out)))

    handles = [module.register_forward_hook(hook) for module in names if not isinstance(module, torch.jit.ScriptModule)]
    try:
        with preserved(model), torch.no_grad():
            set_train_mode(model, False)
            # every run draws the same random numbers: noise left on in eval mode (a VAE's sampling, dropout called
            # with training=True) then moves no sample, and only mixing does
            torch.manual_seed(RUN_SEED)
            output = model(*inputs, **keywords)
    finally:
        for handle in handles:
            handle.remove()
    leaves = [t for _, t in tensor_leaves(output)]
    return (leaves[0] if leaves else None), records


def _sample(tensor: torch.Tensor | None, axis: int = 0) -> torch.Tensor | None:
    """Sample 1's slice along the axis that holds the batch."""
    if tensor is None or tensor.dim() <= axis or tensor.shape[axis] != 2:
        return None
    return tensor.select(axis, 1).detach().clone()


def _moved(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype.is_floating_point:
        return bool((a - b).abs().max() > 1e-6 * (1 + a.abs().max()))
    return not torch.equal(a, b)


def _first_mixing_layer(first, second) -> str | None:
    """The first layer whose sample-1 output moved while its sample-1 input did not."""
    for (name, in_a, out_a), (_, in_b, out_b) in zip(first, second):
        if out_a is None or out_b is None or out_a.shape != out_b.shape:
            continue
        input_still = in_a is not None and in_b is not None and in_a.shape == in_b.shape and not _moved(in_a, in_b)
        if input_still and _moved(out_a, out_b):
            return name
    return None
