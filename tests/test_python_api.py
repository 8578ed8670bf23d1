"""The Python API: `shapecheck.check(model, input=..., loss=..., labels=...)` on objects a notebook or a test has,
its Report, and `shapecheck.watch()` around a training loop."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import shapecheck
from shapecheck.python_api import describe_loss


def softmax_classifier():
    return nn.Sequential(nn.Linear(8, 4), nn.Softmax(dim=1))


def test_check_takes_real_tensors_and_a_loss_object():
    report = shapecheck.check(softmax_classifier(), input=torch.randn(6, 8), loss=nn.CrossEntropyLoss(),
                              labels=torch.randint(0, 4, (6,)))
    assert not report.ok and [f.rule for f in report.errors] == ["SC152"]
    assert report.results[0].trace.inputs[0].shape == (6, 8)
    assert "error[SC152]" in str(report) and "help (verified)" in str(report)
    with pytest.raises(shapecheck.ShapeMismatchError, match="SC152"):
        report.raise_for_errors()


def test_check_takes_shapes_and_names():
    report = shapecheck.check(nn.Linear(8, 1), input=(16, 8), loss="BCEWithLogitsLoss", labels=(16,))
    assert [f.rule for f in report.errors] == ["SC102"]
    assert shapecheck.check(nn.Linear(8, 1), input="16,8", loss="BCEWithLogitsLoss", labels="16,1").ok


def test_check_takes_a_dataloader_batch():
    data = TensorDataset(torch.randn(12, 8), torch.randint(0, 4, (12,)).float())
    loader = DataLoader(data, batch_size=4)
    report = shapecheck.check(nn.Linear(8, 4), input=loader, loss=nn.CrossEntropyLoss())
    assert [f.rule for f in report.errors] == ["SC107"]   # float class ids from the loader's labels
    assert report.results[0].labels.shape == (4,)
    assert shapecheck.check(nn.Linear(8, 4), batch=next(iter(loader)), loss=nn.CrossEntropyLoss()).errors


def test_loss_object_options_reach_the_checks():
    labels = torch.tensor([0, 1, 2, 255, 1, 0])
    model = nn.Linear(8, 3)
    plain = shapecheck.check(model, input=(6, 8), loss=nn.CrossEntropyLoss(), labels=labels)
    skipping = shapecheck.check(model, input=(6, 8), loss=nn.CrossEntropyLoss(ignore_index=255), labels=labels)
    assert any(f.rule == "SC110" for f in plain.findings)
    assert not any(f.rule == "SC110" for f in skipping.findings)


def test_report_shows_a_table_with_the_layers_in_jupyter():
    report = shapecheck.check(softmax_classifier(), input=(6, 8), loss="CrossEntropyLoss", labels=(6,))
    page = report._repr_html_()
    assert "<table>" in page and "SC152" in page and "&#10003;" in page   # a verified fix is ticked
    assert "<summary>layers</summary>" in page and "[6, 4]" in page
    assert repr(report).startswith("<shapecheck.Report errors: 1 error(s)")


def test_watch_checks_the_first_step_and_stops_before_the_optimiser():
    model = softmax_classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    steps = 0
    with shapecheck.watch() as watched:
        for _ in range(3):
            loss = nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, 4, (4,)))
            loss.backward()
            optimizer.step()
            steps += 1
    assert steps == 0 and [f.rule for f in watched.report.errors] == ["SC152"]
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert all(p.grad is None for p in model.parameters())
    # the hooks are gone: training runs normally after the block
    nn.functional.cross_entropy(model(torch.randn(4, 8)), torch.randint(0, 4, (4,))).backward()
    assert nn.Module.__call__.__name__ != "call"


def test_watch_without_stopping_lets_training_go_on():
    model, steps = nn.Linear(8, 4), 0
    with shapecheck.watch(stop=False) as watched:
        for _ in range(3):
            nn.CrossEntropyLoss()(model(torch.randn(4, 8)), torch.randint(0, 4, (4,))).backward()
            steps += 1
    assert steps == 3 and watched.report.ok


@pytest.mark.parametrize(("loss", "classes"), [
    (lambda: nn.CrossEntropyLoss(weight=torch.ones(10)), 5),
    (lambda: nn.BCEWithLogitsLoss(pos_weight=torch.ones(5)), 3),
])
def test_class_weights_sized_for_another_class_count_are_rejected_by_the_loss(loss, classes):
    """The loss object's own class weights are part of the check: the framework rejects them, and the verdict
    says that it is the loss's options, not the labels, that do not fit."""
    labels = torch.randint(0, classes, (8,)) if classes == 5 else torch.ones(8, classes)
    report = shapecheck.check(nn.Sequential(nn.Linear(4, classes)), input=(8, 4), loss=loss(), labels=labels,
                              verify_fixes=False)
    [finding] = report.errors
    assert finding.rule == "SC100" and finding.subject.aspect == "options"
    assert f"one class weight (`weight`, `pos_weight`) per class of the output: {classes}" in str(finding.fixes[0])
    fitting = loss().__class__(**{key: torch.ones(classes) for key in ("weight", "pos_weight")
                                  if getattr(loss(), key, None) is not None})
    assert shapecheck.check(nn.Sequential(nn.Linear(4, classes)), input=(8, 4), loss=fitting, labels=labels,
                            verify_fixes=False).ok


@pytest.mark.parametrize(("loss", "options"), [
    (nn.CrossEntropyLoss(reduction="sum", ignore_index=255), (("ignore_index", 255), ("reduction", "sum"))),
    (nn.MSELoss(reduction="none"), (("reduction", "none"),)),
    (nn.NLLLoss(), ()),
])
def test_the_loss_objects_own_options_are_read(loss, options):
    """What the loss is built with changes what it accepts (`ignore_index`) and what it gives (`reduction`)."""
    assert describe_loss(loss) == (type(loss).__name__, options, None)
