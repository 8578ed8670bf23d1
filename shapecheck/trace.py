"""The framework-neutral record of one traced forward pass: what every adapter produces and every rule reads."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from shapecheck.shapes import TensorMeta

if TYPE_CHECKING:
    from shapecheck.audit import Audit

# What a layer is, whatever its framework's class: adapters map their classes onto these.
LayerKind = Literal["linear", "conv", "rnn", "embedding", "norm", "pool", "activation", "flatten", "dropout",
                    "container", "other"]

# Ops that move or relabel values without computing new ones: walking back through them from the output finds the
# op that really produced the values (the final activation, the head).
TRANSPARENT_OPS = frozenset({
    "view", "reshape", "flatten", "squeeze", "unsqueeze", "transpose", "permute", "contiguous", "__getitem__",
    "clone", "float", "double", "to", "type", "dropout", "identity", "expand", "movedim", "swapaxes", "t",
})


@dataclass(frozen=True)
class Location:
    """A line of the user's code. For a layer built inside a library (torchvision's `fc`), the user's line that
    called into the library, with the library's own line in `defined_in`: that is where a user can act."""

    path: str                                      # as shown: relative to the working directory or site-packages
    line: int
    file: str = field(default="", compare=False)   # the absolute path, for renderers that need a real URI
    defined_in: Location | None = None
    # the user's lines that called this one, innermost first (`TagNet(num_tags=10)` for a head built in
    # `TagNet.__init__`): where a size passed down as an argument was chosen
    callers: tuple[Location, ...] = field(default=(), compare=False, repr=False)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"

    def describe(self) -> str:
        return f"{self} (defined in {self.defined_in})" if self.defined_in else str(self)

    def to_json(self) -> dict:
        place = {"path": self.path, "line": self.line}
        return {**place, "defined_in": self.defined_in.to_json()} if self.defined_in else place


SPATIAL_KEYS = ("kernel_size", "stride", "padding", "dilation")


def per_axis(value: int | tuple | list, rank: int) -> tuple[int, ...]:
    """A window setting as one int per spatial axis: `2` -> (2, 2); `(3,)` -> (3, 3) for a 2-d layer."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    return tuple(int(v) for v in (values * rank if len(values) == 1 else values[:rank]))


def spatial_config(rank: int, **settings) -> dict:
    """The normal form of a conv's or pool's window settings (`SPATIAL_KEYS`): tuples of ints, one per spatial
    axis, height first. Padding is the leading side's; a padding a framework names ("same", "valid", "causal")
    stays that string, since what it resolves to depends on the input size. Unset settings are left out."""
    return {key: value if key == "padding" and isinstance(value, str) else per_axis(value, rank)
            for key, value in settings.items() if value is not None}


@dataclass
class Layer:
    """One module / layer / node; `calls == 0` means it exists in the model but never ran.

    `config` is filled the same way by every adapter: `in_features`/`out_features`, `in_channels`/`out_channels`
    (from the weights, which are what runs), `channel_axis` (1 or -1), the window settings of `spatial_config`,
    and framework-neutral extras (`groups`, `input_size`, `hidden_size`, `batch_first`, `num_embeddings`).
    """

    name: str
    type: str
    kind: LayerKind = "other"
    inputs: list[TensorMeta] = field(default_factory=list)
    outputs: list[TensorMeta] = field(default_factory=list)
    params: dict[str, TensorMeta] = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    declared: dict = field(default_factory=dict)   # the same sizes as the layer's attributes claim them
    source: Location | None = None
    calls: int = 0
    weights_used: bool = False          # its parameters fed an op even if the module was never called
    eval_only: bool = False             # skipped in training mode (LayerDrop, by chance) but run in eval mode
    is_leaf: bool = True
    input_producers: list[int | None] = field(default_factory=list)

    @property
    def output(self) -> TensorMeta | None:
        return self.outputs[0] if self.outputs else None

    @property
    def weight(self) -> TensorMeta | None:
        """The main weight (`weight` in PyTorch, `kernel` in Keras, `embeddings`), for its dtype."""
        return next(iter(self.params.values()), None)

    @property
    def channel_axis(self) -> int:
        return self.config.get("channel_axis", 1)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "input_shapes": [list(t.shape) for t in self.inputs],
            "output_shape": list(self.outputs[0].shape) if self.outputs else None,
            "source": str(self.source) if self.source else None,
        }


@dataclass
class Op:
    """A functional operation seen during the forward pass (`softmax`, `view`, `linear`, ...).

    `name` is canonical (`shapecheck.ops`), `spelling` the framework's own name, for messages and op edits.
    `producers` holds, per tensor input, the index of the op that made it; -1 for a model input, None for a
    parameter or a constant.
    """

    index: int
    name: str
    layer: str
    inputs: list[TensorMeta]
    outputs: list[TensorMeta]
    producers: list[int | None]
    args: dict = field(default_factory=dict)
    source: Location | None = None
    spelling: str = ""

    def __post_init__(self):
        self.spelling = self.spelling or self.name


@dataclass
class Failure:
    """Where the forward pass raised: the innermost layer that was running, and the op inside it."""

    layer: str | None
    op: str | None
    exception: str
    message: str
    inputs: list[TensorMeta] = field(default_factory=list)
    op_index: int | None = None
    needs_values: bool = False          # the symbolic run hit code that reads tensor values
    args: dict = field(default_factory=dict)   # the failing op's non-tensor arguments (`view(-1, 400)`)
    source: Location | None = None      # the line of user code that called the failing op
    producers: list[int | None] = field(default_factory=list)   # as `Op.producers`, for the failing op's inputs
    random_values: bool = False         # it failed on random input values that the forward reads (lengths, masks)
    op_spelling: str | None = None      # `op` as the framework spells it (`op` is canonical), for messages

    def __post_init__(self):
        self.op_spelling = self.op_spelling or self.op

    def to_json(self) -> dict:
        return {"layer": self.layer, "op": self.op, "exception": self.exception, "message": self.message,
                "input_shapes": [list(t.shape) for t in self.inputs]}


@dataclass
class ProbeResult:
    """A batch-mixing probe: changing sample 0 changed sample 1's output; `layer` is the first layer that mixed."""

    layer: str | None


@dataclass
class Trace:
    target: str
    framework: str
    inputs: list[TensorMeta]
    layers: list[Layer] = field(default_factory=list)
    ops: list[Op] = field(default_factory=list)
    outputs: dict[str, TensorMeta] = field(default_factory=dict)   # every output tensor, by its path
    output_ops: dict[str, int | None] = field(default_factory=dict)   # the op that produced each output
    output_path: str | None = None       # the output being checked (a loss's input), one of `outputs`
    output_container: str = ""           # the tuple-like the model returned (`tuple`, `InceptionOutputs`), if any
    output_op: int | None = None         # the op that produced it
    failure: Failure | None = None
    mode: str = "symbolic"
    notes: list[str] = field(default_factory=list)
    alternate: Trace | None = None
    probe: ProbeResult | None = None
    audit: Audit | None = None           # the training-signal audit's measurements (`shapecheck.audit`)
    model_class: str = ""
    declared_inputs: list[TensorMeta] | None = None   # the input shapes a model declares (Keras `Input`, ONNX)
    producer: str = ""                   # for ONNX graphs: the exporter (`pytorch`, `tf2onnx`)
    input_names: list[str] = field(default_factory=list)
    # the library that built the model, for recipes in its own words: `timm`, `transformers`, `torchvision`,
    # `keras.applications:ResNet50` (the application function)
    library: str = ""
    # the problem the model's own configuration declares (a Hugging Face `problem_type`): "multi_label",
    # "single_label", "regression"; "" when it declares none
    task: str = ""

    @property
    def batch(self) -> int | None:
        return self.inputs[0].shape[0] if self.inputs and self.inputs[0].shape else None

    @property
    def output(self) -> TensorMeta | None:
        return self.outputs.get(self.output_path) if self.output_path is not None else None

    def at_output(self, path: str | None) -> Trace:
        """The same trace, checked at another of its outputs (a head of a model with several); itself for its own
        output, or for None (no output was resolved)."""
        if path is None or path == self.output_path:
            return self
        return dataclasses.replace(self, output_path=path, output_op=self.output_ops.get(path))

    def layer(self, name: str | None) -> Layer | None:
        if name is None:
            return None
        return next((layer for layer in self.layers if layer.name == name), None)

    def producer_chain(self, op_index: int | None) -> Iterator[Op]:
        """Yield the ops that produced a tensor, following each op's first tensor input upstream."""
        while op_index is not None and op_index >= 0:
            op = self.ops[op_index]
            yield op
            op_index = next((p for p in op.producers if p is not None), None)

    def value_producer(self, op_index: int | None) -> Op | None:
        """The first op upstream of a tensor that computes values (skips views, reshapes, dropout)."""
        return next((op for op in self.producer_chain(op_index) if op.name not in TRANSPARENT_OPS), None)

    def head_layer(self) -> Layer | None:
        """The last parametrised layer that produced the output (the classifier head)."""
        for op in self.producer_chain(self.output_op):
            layer = self.layer(op.layer)
            if layer is not None and layer.params and layer.kind in ("linear", "conv", "rnn", "embedding"):
                return layer
        return None

    def upstream_layer(self, op_index: int | None, exclude: str = "") -> Layer | None:
        """The nearest leaf layer upstream of a tensor, for messages like "receives [16, 2048] from `avgpool`"."""
        for op in self.producer_chain(op_index):
            layer = self.layer(op.layer)
            if layer is not None and layer.is_leaf and layer.name != exclude and layer.name:
                return layer
        return None


def traced_at_two_batches(trace_at: Callable[[int], Trace], batch: int) -> Trace:
    """Trace at batch N and again at N + 1, the second as `alternate`: an axis whose size follows the batch is a
    batch axis, one that does not is fixed (a reshape with the batch written in, an output that ignores it)."""
    primary = trace_at(batch)
    primary.alternate = trace_at(batch + 1)
    return primary
