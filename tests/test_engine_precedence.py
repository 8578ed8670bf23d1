"""Rule precedence on hand-built cases: for every pair of rules where one supersedes the other (`supersedes`), the
smallest trace, loss and labels on which both rules' own conditions hold. Either rule alone reports; selected
together, only the superseding one does.

A catch-all (SC100 the loss, SC901 the forward pass, SC305 the batch probe) reports whatever its superseder explains,
so its pairs share one builder: the superseder's own case from `test_engine`, unless the pair needs its own. No
framework is imported."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import pytest
from test_engine import CASES

from engine_builders import (
    Case,
    Forward,
    assert_no_framework_imported,
    conv,
    findings,
    fitted,
    head,
    keras_loss,
    labels_of,
    labels_shaped,
    linear,
    measured_head,
    meta,
    one_hot,
    probabilities,
    scores,
    torch_loss,
    unreached,
)
from shapecheck.audit import Constant
from shapecheck.rules import load_rules
from shapecheck.trace import Layer, ProbeResult, Trace, traced_at_two_batches

CATCH_ALLS = ("SC100", "SC901", "SC305")
# the audit's measured rules: a rule that names the cause explains what they measured, wherever it points
MEASURED = ("SC401", "SC402", "SC403", "SC404", "SC405")


def superseding_pairs() -> list[str]:
    """Every direct `A>B` (A supersedes B) in the catalogue."""
    return [f"{code}>{other}" for code, rule in load_rules().items() for other in sorted(rule.supersedes)]


def reported(case: Case, *codes: str) -> set[str]:
    return {finding.rule for finding in findings(case, *codes)}


# --- shared builders: what a case becomes with one more fact -------------------------------------------------------

def with_trace(case: Case, **fields) -> Case:
    """`case`, its trace given `fields` (a declared input, a probe result)."""
    return dataclasses.replace(case, trace=dataclasses.replace(case.trace, **fields))


def frozen_batch(build: Callable[[], Case]) -> Callable[[], Case]:
    """`build`'s model, declaring inputs with a batch of 1 (`Input(batch_shape=(1, ...))`, a static export)."""
    def frozen() -> Case:
        case = build()
        return with_trace(case, declared_inputs=[meta(1, *x.shape[1:]) for x in case.trace.inputs])
    return frozen


def audited(build: Callable[[], Case], code: str) -> Callable[[], Case]:
    """`build`'s model, where the audit also measured what makes the rule `code` report."""
    def measure() -> Case:
        case = build()
        space = case.loss.input_space if case.loss is not None else "logits"
        facts = {
            "SC401": lambda: unreached("fc"),
            "SC402": lambda: measured_head(case.trace.output_path, constant=Constant((1.0, 1.0))),
            "SC403": lambda: measured_head(case.trace.output_path, values=probabilities(4) if space != "probabilities"
                                           else scores(4)),
            "SC404": lambda: measured_head(case.trace.output_path, loss_value=float("nan")),
            "SC405": lambda: fitted(2.0, 1.9),
        }
        found = facts[code]()
        if case.trace.audit is not None:   # the superseder's own measurement stays: both facts hold at once
            found = dataclasses.replace(case.trace.audit, fit=found.fit, unreached=case.trace.audit.unreached
                                        or found.unreached, heads={**found.heads, **case.trace.audit.heads})
        return with_trace(case, audit=found)
    return measure


def probed(build: Callable[[], Case]) -> Callable[[], Case]:
    """`build`'s model, where the probe also saw samples mix, with no layer to blame."""
    return lambda: with_trace(build(), probe=ProbeResult(None))


def batch_norm(name: str, features: int) -> Layer:
    return Layer(name, "BatchNorm1d", "norm", params={"weight": meta(features)}, config={"num_features": features})


# --- the pairs ---------------------------------------------------------------------------------------------------

def own_case(pair: str) -> Callable[[], Case]:
    """The superseder's own case (test_engine)."""
    return CASES[pair.split(">")[0]]


CASE_OF: dict[str, Callable[[], Case]] = {pair: own_case(pair) for pair in superseding_pairs()
                                          if pair.split(">")[1] in CATCH_ALLS}
CASE_OF.update({pair: audited(own_case(pair), pair.split(">")[1]) for pair in superseding_pairs()
                if pair.split(">")[1] in MEASURED})

# Pairs whose superseder's own case already meets the other rule's condition.
CASE_OF.update({pair: own_case(pair) for pair in (
    "SC101>SC102", "SC109>SC101", "SC111>SC110", "SC112>SC110", "SC116>SC107", "SC117>SC101", "SC117>SC102",
    "SC119>SC101", "SC156>SC157", "SC159>SC114", "SC159>SC115", "SC202>SC212", "SC212>SC102", "SC218>SC206", "SC301>SC302", "SC306>SC211",
    "SC307>SC302")})

# Pairs one fact away from a rule case: inputs declared with a fixed batch, a probe that saw samples mix.
CASE_OF.update({
    "SC216>SC100": frozen_batch(CASES["SC302"]),
    "SC216>SC301": frozen_batch(CASES["SC301"]),
    "SC216>SC302": frozen_batch(CASES["SC302"]),
    "SC216>SC306": frozen_batch(CASES["SC306"]),
    "SC216>SC901": frozen_batch(CASES["SC306"]),
    "SC309>SC305": probed(CASES["SC309"]),
    "SC310>SC305": probed(CASES["SC310"]),
})


def case_for(*pairs: str):
    def register(build: Callable[[], Case]) -> Callable[[], Case]:
        CASE_OF.update(dict.fromkeys(pairs, build))
        return build
    return register


# Pairs whose two conditions never hold at once: the superseder's own case shows the other rule staying silent.
IMPOSSIBLE: dict[str, str] = {}   # pairs whose two conditions cannot hold at once (none today)


@case_for("SC403>SC404")
def _():   # softmax probabilities into NLLLoss, done by hand: the loss is negative because of what it receives
    trace = head(meta(8, 20), (8, 10), then=[("exp", (8, 10), {}), ("div", (8, 10), {})])
    trace.audit = measured_head(values=probabilities(10), loss_value=-0.1)
    return Case(trace, torch_loss("NLLLoss"), labels_shaped("8:int64"))


@case_for("SC101>SC107")
def _():   # class ids 0..7 under a binary loss next to a 10-way head: int64 targets, one per sample
    return Case(head(meta(8, 64), (8, 10)), torch_loss("BCEWithLogitsLoss"), labels_of(list(range(8)), "int64"))


@case_for("SC104>SC102")
def _():   # a binary mask predicted at 8x8 for 32x32 labels
    trace = Forward(meta(2, 3, 32, 32)).op("conv2d", (2, 1, 8, 8), "classifier").trace(conv("classifier", 3, 1))
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("2,1,32,32"))


@case_for("SC106>SC114")
def _():   # one output under CrossEntropyLoss, given one-column rows, half of them empty
    return Case(head(meta(8, 40), (8, 1)), torch_loss("CrossEntropyLoss"), labels_of([[1], [0]] * 4, "float32"))


@case_for("SC112>SC100")
def _():   # a trimap read as gray levels 0/128/255 for a 3-class segmenter
    mask = np.zeros((2, 4, 4), dtype="int64")
    mask[:, :2], mask[:, 2] = 255, 128
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 3, 4, 4), "classifier").trace(conv("classifier", 3, 3))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_of(mask, "int64"))


@case_for("SC117>SC107")
def _():   # class ids for a 10-way head under a regression loss that takes no integer targets
    return Case(head(meta(8, 64), (8, 10)), torch_loss("HuberLoss"), labels_of([0, 1, 2, 3, 4, 5, 9, 9], "int64"))


@case_for("SC118>SC101")
def _():   # an RGB mask [N, 3, H, W] for a 4-class segmenter: 3 values per pixel where the head has 4
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 4, 4, 4), "classifier").trace(conv("classifier", 3, 4))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("2,3,4,4:uint8"))


@case_for("SC120>SC100")
def _():   # one label array, one-hot for the 3-way `habitat`, checked against the 4-way `species`
    trace = Forward(meta(8, 64), framework="keras").op("linear", (8, 4), "species") \
        .op("linear", (8, 3), "habitat", reads=[-1]) \
        .trace(linear("species", 64, 4), linear("habitat", 64, 3), output_path="species",
               outputs={"species": meta(8, 4), "habitat": meta(8, 3)})
    return Case(trace, keras_loss("categorical_crossentropy"), labels_of(one_hot([0, 1, 2, 0] * 2, 3), "float64"))


@case_for("SC122>SC100")
def _():   # a train-mode tuple, and labels with a trailing axis the loss takes as multi-target
    trace = Forward(meta(8, 64)).op("linear", (8, 10), "fc").trace(
        linear("fc", 64, 10), output_container="Outputs", output_path=".logits",
        outputs={".logits": meta(8, 10), ".aux_logits": meta(8, 10)})
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8,1:int64"))


@case_for("SC152>SC157")
def _():   # softmax over the width of a [N, C, H, W] map, before CrossEntropyLoss
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 4, 4, 4), "classifier").op("softmax", (2, 4, 4, 4), dim=3) \
        .trace(conv("classifier", 3, 4))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("2,4,4:int64"))


@case_for("SC202>SC201", "SC202>SC901")
def _():   # a Linear sized for pooled channels fails on the conv map itself
    trace = Forward(meta(8, 3, 8, 8)).op("conv2d", (8, 32, 8, 8), "features").fails("linear", layer="fc") \
        .trace(conv("features", 3, 32), linear("fc", 32, 10))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case_for("SC204>SC215", "SC215>SC901")
def _():   # channels-last images into an RGB stem: its 3 channels meet 32 rows
    trace = Forward(meta(8, 32, 32, 3)).fails("conv2d", layer="stem").trace(conv("stem", 3, 16))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case_for("SC206>SC201")
def _():   # float64 data with 12 features into a float32 Linear built for 10
    trace = Forward(meta(8, 12, dtype="float64")).fails("linear", layer="fc").trace(linear("fc", 10, 1))
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("8,1"))


@case_for("SC207>SC100")
def _():   # a new 2-way `fc` assigned on the wrapper; the backbone's 10-way one still runs, labels for 2
    trace = Forward(meta(8, 32)).op("linear", (8, 10), "backbone.fc").trace(
        Layer("backbone", "ResNet", "container", calls=1, is_leaf=False), linear("backbone.fc", 32, 10),
        linear("fc", 32, 2))
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("8,2"))


@case_for("SC208>SC100")
def _():   # `fc.out_features = 2` on a 10-row weight, labels for 2 outputs
    fc = linear("fc", 32, 10, declared={"in_features": 32, "out_features": 2})
    return Case(Forward(meta(8, 32)).op("linear", (8, 10), "fc").trace(fc), torch_loss("BCEWithLogitsLoss"),
                labels_shaped("8,2"))


@case_for("SC214>SC901")
def _():   # 20 features where the model declares 30: its first Dense fails
    trace = Forward(meta(8, 20), framework="keras").fails("linear", layer="fc") \
        .trace(linear("fc", 30, 1), declared_inputs=[meta(-1, 30)])
    return Case(trace, keras_loss("binary_crossentropy"), labels_shaped("8,1"))


@case_for("SC301>SC306")
def _():   # an exported LSTM whose initial state holds the export's batch of 1, then view(-1, 80) folds the batch
    lstm = Layer("lstm", "LSTM", "rnn", inputs=[meta(8, 10, 4), meta(1, 1, 16)], config={"batch_first": True})
    trace = Forward(meta(8, 10, 4), framework="onnx").op("lstm", (8, 10, 16), "lstm").op("view", (16, 80)) \
        .trace(lstm)
    return Case(trace, torch_loss("MSELoss"), labels_shaped("8,80"))


@case_for("SC306>SC100", "SC306>SC302")
def _():   # an exported graph whose Reshape keeps the batch of 1 it was exported with
    trace = Forward(meta(8, 64), framework="onnx").op("reshape", (1, 512)).trace()
    return Case(trace, torch_loss("MSELoss"), labels_shaped("8,64"))


@case_for("SC307>SC901")
def _():   # squeeze() drops the batch axis at batch 1, and BatchNorm1d then refuses the 1-D tensor
    def tagger(n: int) -> Trace:
        forward = Forward(meta(n, 64)).op("squeeze", (64,) if n == 1 else (n, 64))
        forward = forward.fails("batch_norm", layer="norm") if n == 1 else forward.op("batch_norm", (n, 64), "norm")
        return forward.trace(batch_norm("norm", 64))
    return Case(traced_at_two_batches(tagger, 1), torch_loss("BCEWithLogitsLoss"), labels_shaped("1"))


@case_for("SC309>SC901")
def _():   # torch.cat([x, x.mean(0)], dim=1): the mean over the batch lost the batch axis the cat needs
    def centred(n: int) -> Trace:
        return Forward(meta(n, 16)).op("mean", (16,)).fails("cat", reads=[-1, 0], dim=1).trace()
    return Case(traced_at_two_batches(centred, 8), torch_loss("MSELoss"), labels_shaped("8,32"))


# --- the tests ---------------------------------------------------------------------------------------------------

def pair_param(pair: str):
    marks = [pytest.mark.xfail(strict=True, reason=IMPOSSIBLE[pair])] if pair in IMPOSSIBLE else []
    return pytest.param(pair, id=pair, marks=marks)


@pytest.mark.parametrize("pair", [pair_param(pair) for pair in sorted(CASE_OF)])
def test_the_superseding_rule_reports_in_place_of_the_other(pair):
    superseder, superseded = pair.split(">")
    case = CASE_OF[pair]()
    assert reported(case, superseded) == {superseded}
    assert reported(case, superseder) == {superseder}
    assert reported(case, superseder, superseded) == {superseder}


def test_every_superseding_pair_has_a_case():
    assert sorted(CASE_OF) == sorted(superseding_pairs())
    assert set(IMPOSSIBLE) <= set(CASE_OF)


def test_a_warning_does_not_hide_an_error():
    """SC207 supersedes SC100, but an unused layer (a warning) does not explain why the loss rejects the output: the
    loss's error stays."""
    trace = Forward(meta(8, 64)).op("linear", (8, 10), "fc").trace(linear("fc", 64, 10), linear("spare", 64, 10))
    case = Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("8,1"))
    severities = {finding.rule: finding.severity for finding in findings(case, "SC207", "SC100")}
    assert severities == {"SC207": "warning", "SC100": "error"}


@pytest.mark.subprocess
def test_no_framework_is_imported():
    assert_no_framework_imported("test_engine_precedence",
                                 "[cases.reported(cases.CASE_OF[pair](), *pair.split('>')) for pair in cases.CASE_OF]")
