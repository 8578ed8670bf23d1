"""Rule precedence: each rule reports whenever its own condition holds, and the engine keeps, per subject, the most
specific explanation among the selected rules. No framework is imported here."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from shapecheck import engine
from shapecheck import labels as labels_mod
from shapecheck.findings import Subject
from shapecheck.losses import resolve_loss
from shapecheck.oracle import simulate
from shapecheck.recipes.torch import TorchRecipes
from shapecheck.rules import PRECEDENCE, check_precedence, load_rules
from shapecheck.shapes import TensorMeta
from shapecheck.trace import Layer, Op, Trace

RULES_DIR = Path(__file__).resolve().parents[1] / "shapecheck" / "rules"


def _rules(**supersedes: set[str]) -> dict:
    return {code: SimpleNamespace(supersedes=frozenset(codes)) for code, codes in supersedes.items()}


def test_precedence_is_transitive():
    closure = check_precedence(_rules(SC1=set(), SC2={"SC1"}, SC3={"SC2"}))
    assert closure == {"SC1": frozenset(), "SC2": {"SC1"}, "SC3": {"SC1", "SC2"}}


def test_precedence_refuses_unknown_codes():
    with pytest.raises(ValueError, match="SC2 supersedes unknown rule codes: SC9"):
        check_precedence(_rules(SC1=set(), SC2={"SC1", "SC9"}))


def test_precedence_refuses_cycles():
    with pytest.raises(ValueError, match="cycle: SC1 > SC3 > SC2 > SC1|cycle: SC2 > SC1 > SC3 > SC2|cycle: SC3"):
        check_precedence(_rules(SC1={"SC3"}, SC2={"SC1"}, SC3={"SC2"}))


def test_the_catalogue_validates():
    rules = load_rules()
    assert PRECEDENCE.keys() == rules.keys()
    for catch_all in ("SC100", "SC901", "SC305"):   # the least specific explanations supersede nothing
        assert not rules[catch_all].supersedes


def test_no_rule_names_another_rule_in_its_code():
    """Precedence is declared (`supersedes`), never coded as an early return that names the rule reporting instead:
    a rule module mentions no other rule's code anywhere else."""
    offenders = []
    for path in sorted(RULES_DIR.glob("sc[0-9]*.py")):
        own = path.stem[:5].upper()
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not re.match(r"\s*(code|supersedes) = ", line) and set(re.findall(r"SC\d{3}", line)) - {own}:
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


@pytest.mark.parametrize(("first", "second", "covered"), [
    (Subject("loss"), Subject("loss", "shape"), True),           # the whole pairing covers each aspect
    (Subject("loss", "shape"), Subject("loss"), True),
    (Subject("loss", "dtype"), Subject("loss", "shape"), False),
    (Subject("loss", "shape", "aux"), Subject("loss", "shape"), False),   # another head
    (Subject("op", name="3"), Subject("op", name="4"), False),
    (Subject("forward"), Subject("loss", "shape"), False),
])
def test_subject_coverage(first, second, covered):
    assert first.covers(second) is covered


def _classifier(batch: int, classes: int) -> Trace:
    """x [N, 16] -> fc Linear(16, C) -> output [N, C]."""
    x, out = TensorMeta((batch, 16)), TensorMeta((batch, classes))
    fc = Layer("fc", "Linear", "linear", [x], [out], params={"weight": TensorMeta((classes, 16))},
               config={"in_features": 16, "out_features": classes}, calls=1, input_producers=[-1])
    return Trace("model.py:build", "torch", [x], layers=[fc], ops=[Op(0, "linear", "fc", [x], [out], [-1])],
                 outputs={"": out}, output_path="", output_op=0)


def _check(trace, loss_name: str, labels: np.ndarray, select=None):
    loss = resolve_loss(loss_name, "torch")
    info = labels_mod.from_array(labels, "labels")
    verdict = simulate(trace.output, info.meta, None, loss)
    return {f.rule for f in engine.check(trace, loss, info, TorchRecipes(), select=select, loss_check=verdict)}


def test_class_ids_under_a_regression_loss_are_explained_once():
    """Ids 0..9 for a 10-way head under MSE: the head's width (SC101) and the loss (SC117) both hold; SC117 is the
    more specific explanation, and either one alone still reports."""
    trace, ids = _classifier(8, 10), np.arange(8) % 10
    assert _check(trace, "MSELoss", ids, select={"SC101"}) == {"SC101"}
    assert _check(trace, "MSELoss", ids, select={"SC117"}) == {"SC117"}
    both = _check(trace, "MSELoss", ids, select={"SC101", "SC117"})
    assert both == {"SC117"}


def test_a_catch_all_is_kept_when_its_superseder_is_not_selected():
    """The 1000-way head under BCEWithLogitsLoss with [N] labels: the loss rejects it (SC100) and SC101 explains
    why; with SC101 ignored the framework's own verdict is still reported."""
    trace, labels = _classifier(8, 1000), np.ones(8, dtype=np.float32)
    assert _check(trace, "BCEWithLogitsLoss", labels) >= {"SC101"}
    assert "SC100" not in _check(trace, "BCEWithLogitsLoss", labels)
    assert "SC100" in _check(trace, "BCEWithLogitsLoss", labels, select={"SC100"})
