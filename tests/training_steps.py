"""What the training scripts under fixtures/scripts save, checked the same way by every `run` test."""

from __future__ import annotations

from pathlib import Path


def assert_no_training_step(folder: Path):
    """The weights the script saved before training equal those at exit, with no gradient and no `stepped`."""
    import torch

    assert not (folder / "stepped").exists()
    before, after = torch.load(folder / "before.pt"), torch.load(folder / "at_exit.pt")
    assert before["weights"].keys() == after["weights"].keys()
    assert all(torch.equal(before["weights"][k], after["weights"][k]) for k in before["weights"])
    assert after["gradients"] == 0
