"""The engine's unit tier: for every rule, the smallest hand-built trace, loss and labels on which it fires.

No framework is imported and no model runs: each case is the data an adapter would record for the rule's bad fixture
(`fixtures/<framework>/rules/scNNN_*.py`), cut down to what the rule reads. Every case selects its rule alone, so it
holds whichever other rules exist or fire on the same data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from engine_builders import (
    Case,
    Forward,
    assert_no_framework_imported,
    conv,
    embedding,
    findings,
    fitted,
    head,
    keras_loss,
    labels_of,
    labels_shaped,
    linear,
    log_probabilities,
    lstm,
    measured_head,
    meta,
    one_hot,
    probabilities,
    torch_loss,
    unreached,
)
from shapecheck.audit import Audit, Constant, OutputValues, Stop, Symmetric, Unregistered
from shapecheck.rules import load_rules
from shapecheck.trace import Layer, ProbeResult, Trace, traced_at_two_batches

# --- the cases: one per rule, named by its code -------------------------------------------------------------------

CASES: dict[str, Callable[[], Case]] = {}


def case(code: str):
    def register(build: Callable[[], Case]) -> Callable[[], Case]:
        CASES[code] = build
        return build
    return register


@case("SC100")
def _():   # CrossEntropyLoss on [8, 3, 5] with labels [8]: the loss raises, and nothing more specific is selected
    return Case(Forward(meta(8, 20)).op("linear", (8, 15), "categories").op("view", (8, 3, 5))
                .trace(linear("categories", 20, 15)), torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC101")
def _():
    return Case(head(meta(8, 64), (8, 10)), torch_loss("BCEWithLogitsLoss"), labels_shaped("8"))


def test_class_ids_under_a_model_configured_for_multi_label_become_multi_hot_rows_not_a_loss_switch():
    """A Hugging Face config with problem_type="multi_label_classification" decides the loss: the labels change."""
    ids = labels_of(np.arange(8) % 6, "int64")
    trace = head(meta(8, 64), (8, 10))
    [plain] = findings(Case(trace, torch_loss("BCEWithLogitsLoss"), ids), "SC101")
    assert "class-index loss" in plain.fixes[0].title
    trace.task = "multi_label"
    [configured] = findings(Case(trace, torch_loss("BCEWithLogitsLoss"), ids), "SC101")
    assert configured.fixes[0].recipe.text == "labels = F.one_hot(labels, 10).float()"
    [values] = findings(Case(trace, torch_loss("BCEWithLogitsLoss"), ids), "SC113")
    assert values.fixes[0].recipe.text == "labels = F.one_hot(labels, 10).float()"


@case("SC102")
def _():
    return Case(head(meta(8, 13), (8, 1)), torch_loss("MSELoss"), labels_shaped("8"))


@case("SC103")
def _():
    return Case(head(meta(8, 64), (8, 10)), torch_loss("CrossEntropyLoss"), labels_of(one_hot([1, 3] * 4, 10), "int64"))


@case("SC104")
def _():
    trace = Forward(meta(4, 3, 32, 32)).op("conv2d", (4, 3, 8, 8), "classifier").trace(conv("classifier", 3, 3))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("4,32,32:int64"))


@case("SC105")
def _():
    return Case(head(meta(8, 20, 16), (8, 20, 5)), torch_loss("CrossEntropyLoss"), labels_shaped("8,20:int64"))


@case("SC106")
def _():
    return Case(head(meta(8, 40), (8, 1)), torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC107")
def _():
    return Case(head(meta(8, 4), (8, 3)), torch_loss("CrossEntropyLoss"), labels_shaped("8:float64"))


@case("SC108")
def _():   # 16 samples from 10 classes under a 1000-way head
    return Case(head(meta(16, 512), (16, 1000)), torch_loss("CrossEntropyLoss"),
                labels_of(list(range(10)) + list(range(6)), "int64"))


@case("SC109")
def _():
    trace = Forward(meta(8, 64), framework="keras").op("linear", (8, 5), "fc").trace(linear("fc", 64, 5))
    return Case(trace, keras_loss("categorical_crossentropy"), labels_of([0, 1, 2, 3, 4, 0, 1, 2], "int64"))


@case("SC110")
def _():
    return Case(head(meta(8, 40), (8, 10)), torch_loss("CrossEntropyLoss"),
                labels_of([0, 2, 3, 7, 9, 10, 12, 14], "int64"))


@case("SC111")
def _():
    return Case(head(meta(8, 50), (8, 5)), torch_loss("CrossEntropyLoss"), labels_of([1, 2, 3, 4, 5, 1, 2, 3], "int64"))


@case("SC112")
def _():   # a binary mask read as gray levels 0/255
    mask = np.zeros((2, 4, 4), dtype="int64")
    mask[:, :2] = 255
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 2, 4, 4), "classifier").trace(conv("classifier", 3, 2))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_of(mask, "int64"))


@case("SC113")
def _():
    mask = np.zeros((2, 1, 4, 4))
    mask[:, :, :2] = 255
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 1, 4, 4), "classifier").trace(conv("classifier", 3, 1))
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_of(mask, "float32"))


@case("SC114")
def _():   # three samples have no class
    rows = one_hot([0, 1, 2, 3, 4, 0, 1, 2], 5)
    rows[5:] = 0
    return Case(head(meta(8, 64), (8, 5)), torch_loss("CrossEntropyLoss"), labels_of(rows, "float32"))


@case("SC115")
def _():   # multi-label rows for a softmax loss
    rows = one_hot([0, 1, 2, 3, 4, 5, 0, 1], 6)
    rows[:4, 5] = 1
    return Case(head(meta(8, 64), (8, 6)), torch_loss("CrossEntropyLoss"), labels_of(rows, "float32"))


@case("SC116")
def _():
    return Case(head(meta(8, 13), (8, 10)), torch_loss("CrossEntropyLoss"),
                labels_of([1.2, 1.875, 2, 2.45, 3.1, 3.66, 4.35, 5.2], "float32"))


@case("SC117")
def _():
    return Case(head(meta(8, 64), (8, 10)), torch_loss("MSELoss"), labels_of([0, 1, 2, 3, 4, 5, 9, 9], "int64"))


@case("SC118")
def _():   # an RGB mask [N, H, W, 3] for a 4-class segmenter
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 4, 4, 4), "classifier").trace(conv("classifier", 3, 4))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("2,4,4,3:uint8"))


@case("SC119")
def _():   # ids 1..5 one-hot encoded into 6 columns
    trace = Forward(meta(8, 200), framework="keras").op("linear", (8, 5), "fc").trace(linear("fc", 200, 5))
    return Case(trace, keras_loss("categorical_crossentropy"),
                labels_of(one_hot([1, 2, 3, 4, 5, 1, 2, 3], 6), "float64"))


@case("SC120")
def _():
    trace = Forward(meta(8, 64), framework="keras").op("linear", (8, 4), "species") \
        .op("linear", (8, 4), "habitat", reads=[-1]) \
        .trace(linear("species", 64, 4), linear("habitat", 64, 4), output_path="species",
               outputs={"species": meta(8, 4), "habitat": meta(8, 4)})
    return Case(trace, keras_loss("categorical_crossentropy"), labels_of(one_hot([0, 1, 2, 3] * 2, 4), "float64"))


@case("SC121")
def _():   # targets 19..67 behind a sigmoid
    trace = head(meta(8, 20), (8, 1), then=[("sigmoid", (8, 1), {})])
    return Case(trace, torch_loss("MSELoss"), labels_of([[19], [25], [31], [40], [48], [52], [60], [67]], "float32"))


@case("SC122")
def _():   # a train-mode tuple: logits and auxiliary logits
    trace = Forward(meta(8, 64)).op("linear", (8, 10), "fc").trace(
        linear("fc", 64, 10), output_container="Outputs", output_path=".logits",
        outputs={".logits": meta(8, 10), ".aux_logits": meta(8, 10)})
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC123")
def _():
    return Case(head(meta(8, 16), (8, 3)), torch_loss("MSELoss"),
                labels_of([[0.1, np.nan, 0.3]] * 4 + [[0.5, 0.2, 0.1]] * 4, "float32"))


@case("SC151")
def _():
    trace = head(meta(8, 32), (8, 1), then=[("sigmoid", (8, 1), {})])
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("8,1"))


@case("SC152")
def _():
    trace = head(meta(8, 32), (8, 10), then=[("softmax", (8, 10), {"dim": 1})])
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC153")
def _():
    return Case(head(meta(8, 20), (8, 1)), torch_loss("BCELoss"), labels_shaped("8,1"))


@case("SC154")
def _():
    trace = head(meta(8, 30), (8, 3), then=[("softmax", (8, 3), {"dim": 1})])
    return Case(trace, torch_loss("NLLLoss"), labels_shaped("8:int64"))


@case("SC155")
def _():
    trace = head(meta(8, 300), (8, 1), then=[("softmax", (8, 1), {"dim": 1})])
    return Case(trace, torch_loss("BCELoss"), labels_shaped("8,1"))


@case("SC156")
def _():   # log_softmax(dim=0) on [N, 3]: axis 0 grows with the batch
    def iris(n: int) -> Trace:
        return head(meta(n, 4), (n, 3), then=[("log_softmax", (n, 3), {"dim": 0})])
    return Case(traced_at_two_batches(iris, 8), torch_loss("NLLLoss"), labels_shaped("8:int64"))


@case("SC157")
def _():   # log_softmax over the width of a [N, C, H, W] map
    trace = Forward(meta(2, 3, 4, 4)).op("conv2d", (2, 4, 4, 4), "classifier").op("log_softmax", (2, 4, 4, 4), dim=3) \
        .trace(conv("classifier", 3, 4))
    return Case(trace, torch_loss("NLLLoss"), labels_shaped("2,4,4:int64"))


@case("SC201")
def _():   # sized for 32x8x8 maps, fed 32x16x16
    trace = Forward(meta(8, 3, 64, 64)).op("conv2d", (8, 32, 16, 16), "features").op("flatten", (8, 8192)) \
        .fails("linear", layer="fc").trace(conv("features", 3, 32), linear("fc", 2048, 10))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC202")
def _():   # a Linear straight on a conv map
    trace = Forward(meta(8, 3, 8, 8)).op("conv2d", (8, 32, 8, 8), "features").op("linear", (8, 32, 8, 10), "fc") \
        .trace(conv("features", 3, 32), linear("fc", 8, 10))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC203")
def _():
    trace = Forward(meta(8, 3, 32, 32)).op("conv2d", (8, 32, 32, 32), "conv1").op("max_pool2d", (8, 32, 16, 16)) \
        .fails("conv2d", layer="conv2").trace(conv("conv1", 3, 32), conv("conv2", 16, 64))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC204")
def _():   # grayscale into an RGB stem
    trace = Forward(meta(8, 1, 28, 28)).fails("conv2d", layer="stem").trace(conv("stem", 3, 16))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC205")
def _():   # a 2x2 map reaches an unpadded 3x3 kernel
    trace = Forward(meta(8, 3, 32, 32)).op("max_pool2d", (8, 32, 2, 2)) \
        .fails("conv2d", layer="last_conv").trace(conv("last_conv", 32, 32, padding=0))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC206")
def _():   # float64 numpy data into float32 weights
    trace = Forward(meta(8, 12, dtype="float64")).fails("linear", layer="fc").trace(linear("fc", 12, 1))
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("8,1"))


@case("SC207")
def _():   # a new `fc` assigned on the wrapper while the backbone still runs its own
    trace = Forward(meta(8, 32)).op("linear", (8, 10), "backbone.fc").trace(
        Layer("backbone", "ResNet", "container", calls=1, is_leaf=False), linear("backbone.fc", 32, 10),
        linear("fc", 32, 2))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC208")
def _():   # `fc.out_features = 2` edited on a layer whose weight has 10 rows
    fc = linear("fc", 32, 10, declared={"in_features": 32, "out_features": 2})
    trace = Forward(meta(8, 32)).op("linear", (8, 10), "fc").trace(fc)
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC209")
def _():
    trace = Forward(meta(8, 25, dtype="int64")).op("embedding", (8, 25, 100), "embed").fails("lstm", layer="lstm") \
        .trace(embedding("embed", 1000, 100), lstm("lstm", 128, 64, batch_first=True))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC210")
def _():   # BatchNorm1d(64) on [N, L, 64]
    norm = Layer("norm", "BatchNorm1d", "norm", params={"weight": meta(64)}, config={"num_features": 64})
    trace = Forward(meta(8, 50, 12)).op("linear", (8, 50, 64), "proj").fails("batch_norm", layer="norm") \
        .trace(linear("proj", 12, 64), norm)
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC211")
def _():   # LeNet's view(-1, 400) on 16x4x4 maps
    trace = Forward(meta(8, 1, 28, 28)).op("max_pool2d", (8, 16, 4, 4)).fails("view", args=[-1, 400]).trace()
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC212")
def _():   # an LSTM that returns every step, labels one per sequence
    encoder = Layer("encoder", "LSTM", "rnn", params={"kernel": meta(6, 128)}, config={"return_sequences": True})
    trace = Forward(meta(8, 20, 6), framework="keras").op("lstm", (8, 20, 32), "encoder") \
        .op("linear", (8, 20, 1), "out").trace(encoder, linear("out", 32, 1))
    return Case(trace, keras_loss("binary_crossentropy"), labels_shaped("8"))


@case("SC214")
def _():   # images without the channel axis the model declares
    trace = Forward(meta(8, 64, 64), framework="keras").op("conv", (8, 62, 62, 16), "conv1") \
        .trace(declared_inputs=[meta(-1, 64, 64, 3)])
    return Case(trace, keras_loss("sparse_categorical_crossentropy"), labels_shaped("8:int64"))


@case("SC215")
def _():   # channels-last images into a channels-first conv (whose in_channels happen to fit)
    trace = Forward(meta(8, 32, 32, 3)).op("conv2d", (8, 16, 32, 3), "stem").trace(conv("stem", 32, 16))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC216")
def _():   # `Input(batch_shape=(1, 10, 3))`, trained in batches of 8
    trace = Forward(meta(8, 10, 3), framework="keras").op("linear", (8, 10, 5), "out") \
        .trace(linear("out", 3, 5), declared_inputs=[meta(1, 10, 3)])
    return Case(trace, keras_loss("mean_squared_error"), labels_shaped("8,10,5"))


@case("SC217")
def _():   # a U-Net on 34x34: the skip connection joins 16x16 and 17x17 maps
    trace = Forward(meta(4, 3, 34, 34)).op("max_pool2d", (4, 16, 17, 17)).op("max_pool2d", (4, 16, 8, 8)) \
        .op("upsample_nearest2d", (4, 16, 16, 16)).fails("cat", reads=[2, 0]).trace()
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("4,34,34:int64"))


@case("SC218")
def _():   # two embeddings chained: the second gets the first one's vectors
    trace = Forward(meta(8, 3, dtype="int64")).op("embedding", (8, 3, 8), "embedded.0") \
        .fails("embedding", layer="embedded.1").trace(embedding("embedded.0", 10, 8), embedding("embedded.1", 10, 8))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC301")
def _():   # view(-1, 400) on 32x5x5 maps folds the batch of 8 into 16 rows
    trace = Forward(meta(8, 3, 32, 32)).op("conv2d", (8, 32, 5, 5), "conv").op("view", (16, 400)) \
        .op("linear", (16, 10), "fc").trace(conv("conv", 3, 32), linear("fc", 400, 10))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC302")
def _():   # two branches joined along the batch axis
    trace = Forward(meta(8, 4)).op("linear", (8, 16), "branch_a").op("linear", (8, 16), "branch_b", reads=[-1]) \
        .op("cat", (16, 16), reads=[0, 1]).op("linear", (16, 1), "head") \
        .trace(linear("branch_a", 4, 16), linear("branch_b", 4, 16), linear("head", 16, 1))
    return Case(trace, torch_loss("BCEWithLogitsLoss"), labels_shaped("8,1"))


@case("SC303")
def _():
    return Case(head(meta(8, 16), (8, 2)), torch_loss("MSELoss"), labels_shaped("16"))


@case("SC304")
def _():   # the probe saw a time-major LSTM mix samples
    trace = Forward(meta(8, 20, 32)).op("lstm", (8, 20, 48), "lstm").op("linear", (8, 4), "fc") \
        .trace(lstm("lstm", 32, 48), linear("fc", 48, 4), probe=ProbeResult("lstm"))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC305")
def _():   # the probe saw samples mix, with no layer to blame
    return Case(Forward(meta(8, 24)).op("roll", (8, 24)).trace(probe=ProbeResult(None)),
                torch_loss("MSELoss"), labels_shaped("8,24"))


@case("SC306")
def _():   # view(64, 128, 4, 4) on a batch of 16
    trace = Forward(meta(16, 100)).op("linear", (16, 2048), "fc").fails("view", args=[64, 128, 4, 4]) \
        .trace(linear("fc", 100, 2048))
    return Case(trace, torch_loss("MSELoss"), labels_shaped("16,3,16,16"))


@case("SC307")
def _():   # squeeze() on [N, 64] drops the batch axis when N is 1
    def tagger(n: int) -> Trace:
        return Forward(meta(n, 64)).op("squeeze", (64,) if n == 1 else (n, 64)).trace()
    return Case(traced_at_two_batches(tagger, 1), torch_loss("BCEWithLogitsLoss"), labels_shaped("1"))


@case("SC308")
def _():   # BatchNorm2d in training mode on [1, 32, 1, 1]
    norm = Layer("branch.3", "BatchNorm2d", "norm", params={"weight": meta(32)}, config={"num_features": 32})
    trace = Forward(meta(1, 3, 32, 32)).op("adaptive_avg_pool2d", (1, 32, 1, 1)).fails("batch_norm", layer="branch.3") \
        .trace(norm)
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("1:int64"))


@case("SC309")
def _():   # x + x.mean(0): the mean over the batch is the same size at every batch
    def centred(n: int) -> Trace:
        return Forward(meta(n, 16)).op("mean", (16,)).op("add", (n, 16), reads=[-1, 0]).trace()
    return Case(traced_at_two_batches(centred, 8), torch_loss("MSELoss"), labels_shaped("8,16"))


@case("SC310")
def _():   # view(T, N, F) of a batch-first [N, T, F]
    def clips(n: int) -> Trace:
        return Forward(meta(n, 10, 64)).op("view", (10, n, 64)).trace()
    return Case(traced_at_two_batches(clips, 4), torch_loss("MSELoss"), labels_shaped("10,4,64"))


@case("SC401")
def _():   # a gate routed by argmax: no gradient reaches it
    trace = Forward(meta(8, 16)).op("linear", (8, 4), "gate").op("argmax", (8,)).op("linear", (8, 3), "expert") \
        .trace(linear("gate", 16, 4), linear("expert", 16, 3))
    trace.audit = unreached("gate", stop=Stop("argmax", "argmax", "", (8, 4)))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC402")
def _():   # standardised ages cast to embedding ids: all 0, so the output is one constant
    trace = head(meta(8, 8), (8, 1))
    trace.audit = measured_head(constant=Constant((-0.5, -0.5), "long", ""))
    return Case(trace, torch_loss("MSELoss"), labels_shaped("8,1"))


@case("SC403")
def _():   # scores normalised by hand (exp / sum) before CrossEntropyLoss: no softmax op to see
    trace = head(meta(8, 20), (8, 10), then=[("exp", (8, 10), {}), ("div", (8, 10), {})])
    trace.audit = measured_head(values=probabilities(10))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


def test_logits_clamped_at_zero_by_a_relu_are_unfit_for_a_logits_loss():
    trace = head(meta(8, 20), (8, 10), then=[("relu", (8, 10), {})])
    trace.audit = measured_head(values=OutputValues(0.0, 1.7, 10, (2.0, 6.0), (11.0, 19.0), zeros=0.55))
    [finding] = findings(Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64")), "SC403")
    assert "55% of the output's values are exactly 0" in finding.message
    trace.audit = measured_head(values=OutputValues(0.0, 0.0, 10, (0.0, 0.0), (10.0, 10.0), zeros=1.0))
    assert not findings(Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64")), "SC403")  # zero-init head


@case("SC404")
def _():   # KLDivLoss against a teacher's raw logits: nan from the first step
    trace = head(meta(8, 20), (8, 10), then=[("log_softmax", (8, 10), {"dim": 1})])
    trace.audit = measured_head(values=log_probabilities(10), loss_value=float("nan"), labels_real=True)
    return Case(trace, torch_loss("KLDivLoss"), labels_of(np.random.default_rng(0).standard_normal((8, 10)), "float32"))


@case("SC405")
def _():   # a regression head squashed by 5 * tanh(x / 100): the loss on targets up to 900 hardly moves
    trace = head(meta(8, 16), (8, 1), then=[("tanh", (8, 1), {}), ("mul", (8, 1), {})])
    trace.audit = fitted(2.9e5, 2.88e5)
    return Case(trace, torch_loss("MSELoss"), labels_shaped("8,1"))


@case("SC158")
def _():   # a sigmoid of a sigmoid before BCELoss: predictions stay within (0.5, 0.731)
    trace = head(meta(8, 16), (8, 1), then=[("sigmoid", (8, 1), {}), ("sigmoid", (8, 1), {})])
    return Case(trace, torch_loss("BCELoss"), labels_shaped("8,1"))


@case("SC159")
def _():   # channels-first class maps under Keras: labels one-hot along axis 1, the loss reads the last axis
    trace = Forward(meta(8, 16, 4), framework="keras").op("conv", (8, 16, 3), "logits") \
        .op("permute", (8, 3, 16)).op("softmax", (8, 3, 16), "softmax", axis=-1).trace()
    classes = np.random.default_rng(0).integers(0, 2, (8, 16))   # class 2 never occurs: its rows are empty too
    labels = labels_of(np.eye(3, dtype="float32")[classes].transpose(0, 2, 1), "float32")
    return Case(trace, keras_loss("categorical_crossentropy"), labels)


@case("SC406")
def _():   # hidden layers in a plain list: the loss trains them, the optimiser never sees them
    trace = head(meta(8, 16), (8, 3))
    trace.audit = Audit(unregistered=Unregistered(("hids[0]", "hids[1]"), False, 1088))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC407")
def _():   # a zero-initialised MLP: its hidden units stay identical
    trace = head(meta(8, 16), (8, 3))
    trace.audit = Audit(symmetric=Symmetric(("fc1", "fc2"), 32, 3))
    return Case(trace, torch_loss("CrossEntropyLoss"), labels_shaped("8:int64"))


@case("SC901")
def _():   # a failure no specific rule explains
    trace = Forward(meta(8, 64, 256)).fails("unflatten", args=[2, [6, 42]]).trace()
    return Case(trace, torch_loss("MSELoss"), labels_shaped("8,64,256"))


# --- the tests -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(CASES))
def test_rule_fires_on_its_own_case(code):
    reported = findings(CASES[code](), code)
    assert code in {finding.rule for finding in reported}, [finding.message for finding in reported]


def test_every_rule_has_a_case():
    assert sorted(load_rules()) == sorted(CASES)


@pytest.mark.subprocess
def test_no_framework_is_imported():
    assert_no_framework_imported("test_engine", "[cases.findings(cases.CASES[code](), code) for code in cases.CASES]")
