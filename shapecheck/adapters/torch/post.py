"""What the user's code did between the model and the loss (`outputs.logits`, `.permute(0, 2, 1)`, `.view(-1, C)`),
learnt from the real tensors of one training step and replayed on the traced output at any batch size."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from shapecheck.adapters.torch.tracer import tensor_leaves

MAX_PERMUTED_RANK = 5


@dataclass(frozen=True)
class PostProcessing:
    leaf: str                              # which tensor of the model's output (`.logits`, `[0]`, "")
    order: tuple[int, ...] | None = None   # a permutation of its axes
    sample_shape: tuple[int, ...] | None = None   # a reshape to (-1, *sample_shape): samples folded or flattened

    def __call__(self, output):
        tensor = dict(tensor_leaves(output))[self.leaf]
        if self.order is not None:
            tensor = tensor.permute(*self.order)
        if self.sample_shape is not None:
            tensor = tensor.reshape(-1, *self.sample_shape)
        return tensor

    def describe(self) -> str:
        steps = [f"output{self.leaf}" if self.leaf else "output"]
        if self.order is not None:
            steps.append(f".permute{self.order}")
        if self.sample_shape is not None:
            steps.append(f".reshape(-1{''.join(f', {d}' for d in self.sample_shape)})")
        return "".join(steps)


def learn(output, loss_input: torch.Tensor) -> PostProcessing | None:
    """The selection, permutation and reshape that turn the model's real `output` into the tensor the loss got;
    None when it is none of these (the loss then reads the model's output as it is)."""
    leaves = list(tensor_leaves(output))
    for path, leaf in leaves:
        if leaf is loss_input:
            return PostProcessing(path) if path or not isinstance(output, torch.Tensor) else None
    for path, leaf in leaves:
        if leaf.numel() != loss_input.numel() or leaf.dim() > MAX_PERMUTED_RANK:
            continue
        for order in itertools.permutations(range(leaf.dim())):
            moved = leaf.detach().permute(*order)
            if torch.equal(moved.reshape(-1), loss_input.detach().reshape(-1)):
                identity = order == tuple(range(leaf.dim()))
                reshaped = moved.shape != loss_input.shape
                return PostProcessing(path, None if identity else order,
                                      tuple(loss_input.shape[1:]) if reshaped else None)
    return None
