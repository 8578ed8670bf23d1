"""The training-signal audit: what a real step on a tiny batch measures, as facts the rules read.

Bugs that raise nothing still leave numbers behind: parameters that no gradient reaches, an output that does not
move when the input does, a loss whose value at initialisation no correct model can give, output values outside
what the loss reads. An adapter measures them (`Adapter.audit`) on the model at initialisation and, for anything
suspicious, again after a few seeded training steps of a copy, so that a deliberate zero initialisation (a
zero-init head, a residual branch scaled by zero) is never reported. This module imports no framework.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from shapecheck.labels import LabelInfo
from shapecheck.losses import LossContract
from shapecheck.trace import Location, Trace

STEPS = 3             # training steps a suspicious fact must survive (one step lifts a zero-initialised scale)
FIT_STEPS = 300       # one-batch overfit: at most this many Adam steps on the audit's batch
FIT_LEARNING_RATE = 3e-3
FIT_MEMORISED = 0.5   # the loss halved: the model memorises the batch, the overfit stops
FIT_STUCK = 0.9       # after every step, the loss still above this share of its first value: it cannot fit them
FIT_MAX_PARAMETERS = 2_000_000     # only small models are overfit: bounded time, and no doubt about capacity
FIT_MAX_VALUES = 1_000_000         # values one forward pass computes: 300 steps of it stay within seconds (a bound
# on the model's work, not on the clock, so that a busy machine gives the same findings)
MAX_ACTIVATIONS = 400_000_000   # values the forward pass computes at the audit's batch: about 1.6 GB in float32,
# several times that with the backward pass and the trained copy (MViT on 16 frames of 224 px is 2.9 billion)
MAX_SAMPLES = 16      # the audit's batch: the first samples of the check's
SUM_TOLERANCE = 1e-3  # how close to 1 a row must sum to be a probability distribution
CLAMPED_SHARE = 0.05  # values exactly 0 at the output's minimum: scores from a linear layer are never exactly 0


@dataclass(frozen=True)
class AuditHead:
    """A head the audit computes the loss of: its output, loss and labels (real values, or a shape)."""

    output: str | None
    loss: LossContract
    labels: LabelInfo
    post: object = None     # the user's code between the model and this loss (PyTorch, from `run`)


@dataclass(frozen=True)
class Stop:
    """Where the gradient stops: the first op whose input gets no gradient while its output does (or needs none)."""

    op: str                  # canonical op name (`detach`, `argmax`, `softmax`, `mul`)
    spelling: str            # the framework's own name
    layer: str               # the module it ran in ("" the model's own forward)
    shape: tuple[int, ...]   # the shape of the input whose gradient stops there
    source: Location | None = None   # the user's line that ran it


@dataclass(frozen=True)
class Unreached:
    """Trainable parameters that got no gradient from the loss at initialisation nor after `steps` steps."""

    layers: tuple[str, ...]   # their modules, in forward order
    values: int               # how many values they hold
    total: int                # trainable values in the model
    steps: int
    stop: Stop | None = None
    # the parameters, when no module has lost all of its own: a gradient that stops inside a layer (the reverse
    # direction of a bidirectional LSTM read at its last step sees one input, so its recurrent weights get none)
    partial: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unregistered:
    """Parameters the loss gives a gradient that the model does not list (`model.parameters()`): an optimiser built
    from the model never updates them."""

    held: tuple[str, ...]     # modules held in plain lists, tuples or dicts, by attribute path (`hids[0]`)
    created: bool             # some were created during the forward pass (`nn.Linear(...)(x)` in `forward`)
    values: int               # how many values they hold
    source: Location | None = None   # the user's line that first read one
    layer: str = ""                  # the module whose forward first read one ("" the model's own)


@dataclass(frozen=True)
class Symmetric:
    """Layers whose units (the rows of a weight) were identical at initialisation and still are after `steps` steps:
    every unit gets the same gradient, so the layer computes one feature however wide it is."""

    layers: tuple[str, ...]   # their modules, in forward order
    units: int                # the rows of the first one's weight
    steps: int


@dataclass(frozen=True)
class Constant:
    """An output that did not move when every sample's input changed, at initialisation and after the steps."""

    value_range: tuple[float, float]   # what it holds
    op: str = ""                       # the first op whose output stopped moving while its input moved
    layer: str = ""
    source: Location | None = None


@dataclass(frozen=True)
class OutputValues:
    """The values the loss receives from one output at initialisation, along the loss's class axis."""

    minimum: float
    maximum: float
    classes: int                                    # the size of the class axis (1 for one value per sample)
    row_sums: tuple[float, float] | None = None     # min and max of the rows' sums along the class axis
    exp_row_sums: tuple[float, float] | None = None   # the same for exp(values): log-probabilities sum to 1
    zeros: float = 0.0                              # the share of values that are exactly 0 (a clamp's floor)

    @property
    def are_probabilities(self) -> bool:
        """Every row is a distribution: values in [0, 1] summing to 1 over two or more classes."""
        return self.classes > 1 and self.minimum >= 0.0 and self.maximum <= 1.0 and \
            self.row_sums is not None and _near_one(self.row_sums)

    @property
    def clamped_at_zero(self) -> bool:
        """A floor at exactly 0 that a share of the values sits on, others above: a ReLU's output, not scores."""
        return self.minimum == 0.0 and self.maximum > 0.0 and self.zeros >= CLAMPED_SHARE

    @property
    def are_log_probabilities(self) -> bool:
        return self.classes > 1 and self.maximum <= 0.0 and self.exp_row_sums is not None and \
            _near_one(self.exp_row_sums)


def _near_one(span: tuple[float, float]) -> bool:
    return abs(span[0] - 1.0) <= SUM_TOLERANCE and abs(span[1] - 1.0) <= SUM_TOLERANCE


@dataclass(frozen=True)
class HeadAudit:
    """One head's measurements: its loss at initialisation and the values its loss receives."""

    values: OutputValues | None = None
    loss_value: float | None = None     # the loss at initialisation, on the labels (or valid stand-ins)
    loss_error: str = ""                # the loss raised on the real output values
    labels_real: bool = False           # the loss was computed on the user's labels, not stand-ins
    constant: Constant | None = None


@dataclass(frozen=True)
class Fit:
    """The one-batch overfit: the loss of a copy trained `steps` seeded Adam steps on the audit's samples. A correct
    small model memorises a handful of samples; one that cannot has a bug between its input and its loss."""

    samples: int
    steps: int                   # the steps taken (fewer than `FIT_STEPS` once the loss halved)
    initial: float
    final: float                 # the lowest of the last few steps (dropout makes single steps noisy)
    trainable: int               # trainable values: 0 means every parameter is frozen
    weakest: tuple[str, float] | None = None   # the layer whose weights get the smallest gradient for their size,
    # and that ratio against the median layer's, when it is vanishingly small


@dataclass
class Audit:
    """What the audit measured on a model: facts about the whole model, and per head (by output path)."""

    unreached: Unreached | None = None
    unregistered: Unregistered | None = None
    symmetric: Symmetric | None = None
    fit: Fit | None = None
    heads: dict[str, HeadAudit] = field(default_factory=dict)
    samples: int = 0
    seconds: float = 0.0
    made_up_inputs: bool = True   # standard-normal inputs, not the user's values: their range is not the data's

    def head(self, output: str | None) -> HeadAudit | None:
        return self.heads.get(output or "")


def audit_labels(labels: LabelInfo, full: int, batch: int) -> tuple[tuple[int, ...], bool]:
    """The labels' shape at the audit's `batch` samples (of the check's `full`), and whether their first axis is
    the samples'."""
    shape = tuple(labels.shape)
    per_sample = bool(shape) and shape[0] == full
    return ((batch, *shape[1:]) if per_sample else shape), per_sample


def stand_in_kind(loss: LossContract) -> str:
    """The labels a loss accepts, to make up when only their shape is known: `class_ids` in range, `distribution`
    rows shaped like the output, `binary` 0/1 values, or `normal` values for a regression."""
    if loss.wants_class_indices:
        return "class_ids"
    if loss.target == "one_hot":
        return "distribution"
    return "binary" if loss.family == "binary" else "normal"


def activations(trace: Trace, samples: int) -> int:
    """How many values the forward pass computes at `samples` samples, from the trace's ops."""
    computed = sum(math.prod(tensor.shape) for op in trace.ops for tensor in op.outputs)
    return computed * samples // max(trace.batch or 1, 1)


def expected_loss(loss: LossContract, classes: int) -> float | None:
    """What an untrained model gives, about: ln C for a C-way cross-entropy, ln 2 for a binary one."""
    if loss.family == "categorical" and classes > 1:
        return math.log(classes)
    if loss.family == "binary":
        return math.log(2)
    return None


def is_nonnegative(loss: LossContract) -> bool:
    """Cross-entropies and divergences cannot go below 0 on the inputs and targets they are defined for."""
    return loss.family in ("binary", "categorical")
