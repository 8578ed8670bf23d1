"""Fix recipes: the code a finding suggests, written in the user's framework.

Rules decide *what* to change; a `Recipes` subclass per framework decides how that reads in code. The base class
is the contract every framework implements: each method annotated `-> Recipe` returns a `Recipe` value (its text
and its edits, `shapecheck.edits`). A framework writes only the text; `_EDITS` below gives the edits of a recipe
call, whatever the framework, so the text shown and the change verified come from the same call. Label recipes are
built from label steps as data (`labels_steps(("cast", "float32"), ("unsqueeze", 1))`), never parsed from text.
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass, replace

from shapecheck.edits import Edit, LabelStep, Recipe, labels_edit
from shapecheck.trace import Layer

# PyTorch's cast methods; other dtypes are written `.to(torch.<dtype>)`
TORCH_CASTS = {"float32": "float()", "float64": "double()", "int64": "long()", "float16": "half()"}


def keyword_arguments(options: dict) -> str:
    """`ignore_index=255`, as a call writes its keyword arguments."""
    return ", ".join(f"{key}={value!r}" for key, value in options.items())


def _loss_use(name: str, from_logits: bool | None = None, options: tuple = ()) -> tuple[Edit, ...]:
    return (Edit("loss", "use", (name, from_logits, options)),)


# what a PyTorch loss a rule names is in Keras: (name, from_logits)
_KERAS_EQUIVALENTS = {"BCEWithLogitsLoss": ("binary_crossentropy", True), "BCELoss": ("binary_crossentropy", False),
                      "CrossEntropyLoss": ("sparse_categorical_crossentropy", None),
                      "NLLLoss": ("sparse_categorical_crossentropy", None), "MSELoss": ("mean_squared_error", None)}
_KERAS_OPTION_NAMES = {"ignore_index": "ignore_class"}


def _named_loss(framework: str, name: str, options: tuple) -> tuple[Edit, ...]:
    if framework != "keras":
        return _loss_use(name, None, options)
    keras_name, from_logits = _KERAS_EQUIVALENTS.get(name, (name, None))
    return _loss_use(keras_name, from_logits, tuple((_KERAS_OPTION_NAMES.get(k, k), v) for k, v in options))


def _switch(torch_name, keras_name, from_logits=None):
    """A loss switch that reads as `torch_name` in PyTorch and `keras_name(from_logits=...)` in Keras."""
    return lambda self, *args: (
        _loss_use(keras_name(*args) if callable(keras_name) else keras_name, from_logits(*args) if callable(
            from_logits) else from_logits) if self.framework == "keras"
        else _loss_use(torch_name(*args) if callable(torch_name) else torch_name))


def _resize(key):
    def edits(self, layer, size, activation=None):
        resized = (Edit("layer", "resize", ((key, size),), layer.name),)
        if activation and self.framework == "keras":   # Keras writes the activation into the head itself
            return resized + (Edit("layer", "set", (("activation", activation),), layer.name),)
        return resized
    return edits


# recipe name -> its edits, computed from the recipe's own arguments
_EDITS = {
    "replace_head": _resize("out"),
    "replace_linear_input": _resize("in"),
    "replace_conv_input": _resize("in"),
    "replace_norm": _resize("in"),
    "recurrent_input_size": _resize("in"),
    "return_last_step": lambda self, layer: (Edit("layer", "set", (("return_sequences", False),), layer.name),)
    if self.framework == "keras" else (),
    "recurrent_batch_first": lambda self, layer: (Edit("layer", "set", (("batch_first", True),), layer.name),),
    "add_classifier": lambda self, features, outputs, activation=None: (
        Edit("model", "add_classifier", (features, outputs, activation)),),
    "pool_before": lambda self, layer: (
        Edit("layer", "pool_before", (len(layer.inputs[0].shape) if layer.inputs else 4,), layer.name),),
    "pool_after": lambda self, layer: (Edit("layer", "pool_after", (), layer.name),),
    "flatten_before": lambda self, layer, in_features: (Edit("layer", "flatten_before", (in_features,), layer.name),),
    "permute_output": lambda self, order: (Edit("output", "permute", (tuple(order),)),),
    "move_class_axis": lambda self, rank: (Edit("output", "permute", ((0, rank - 1, *range(1, rank - 1)),)),)
    if self.framework == "torch" else (),
    "resize_output": lambda self: (Edit("output", "resize_to_labels"),),
    "end_with": lambda self, activation, axis=None: (Edit("output", "activation", (activation, axis)),),
    "channels_first": lambda self, rank: (Edit("input", "permute", ((0, rank - 1, *range(1, rank - 1)),)),),
    "channels_last": lambda self, rank: (Edit("input", "permute", ((0, *range(2, rank), 1),)),),
    "swap_axes": lambda self, first, second: (Edit("input", "swap", (first, second)),),
    "repeat_channels": lambda self, channels: (Edit("input", "repeat_channels", (channels,)),),
    "gray_to_rgb": lambda self, channels: (Edit("input", "repeat_channels", (channels,)),),
    "cast_input": lambda self, dtype: (Edit("input", "cast", (dtype,)),),
    "pad_spatial": lambda self, padding: (Edit("input", "pad", (tuple(padding),)),),
    "flatten_per_sample": lambda self: (Edit("layer", "flatten_per_sample"),),
    "squeeze": lambda self, axis: labels_edit(("squeeze", axis)),
    "unsqueeze": lambda self, axis: labels_edit(("unsqueeze", axis)),
    "to_dtype": lambda self, dtype: labels_edit(("cast", dtype)),
    "argmax": lambda self, axis: labels_edit(("argmax", axis)),
    "positive_mask": lambda self, dtype: labels_edit(("positive", dtype)),
    "unscale_ids": lambda self, scale: labels_edit(("unscale", scale)),
    "one_hot": lambda self, ids, classes: labels_edit(("one_hot", classes)) if ids == "labels" else (),
    "loss": lambda self, name, **options: _named_loss(self.framework, name, tuple(options.items())),
    "logits_loss": _switch(lambda loss: "BCEWithLogitsLoss" if loss.family == "binary" else "CrossEntropyLoss",
                           lambda loss: loss.name, True),
    "probability_loss": _switch(lambda loss: "BCELoss" if loss.family == "binary" else "NLLLoss",
                                lambda loss: loss.name, False),
    "binary_loss": _switch(lambda logits: "BCEWithLogitsLoss" if logits else "BCELoss", "binary_crossentropy",
                           lambda logits: logits),
    "class_index_loss": _switch("CrossEntropyLoss", "sparse_categorical_crossentropy",
                                lambda loss: bool(loss.from_logits)),
    "one_hot_loss": _switch("CrossEntropyLoss", "categorical_crossentropy", lambda loss: loss.from_logits),
}


@dataclass(frozen=True)
class ScriptNames:
    """What the user's training code calls things at its loss call (`loss = F.cross_entropy(logits, yb)`): recipes
    are written with these names instead of `labels`, `output` and `criterion`."""

    labels: str = "labels"
    output: str = "output"
    loss: str = "criterion"     # a loss object's name, or the function called (`F.cross_entropy`)

    @property
    def functional(self) -> bool:
        """The loss is a function call (`F.cross_entropy(...)`), not a loss object (`criterion(...)`)."""
        return self.loss.rpartition(".")[2] in FUNCTIONAL_LOSSES.values()

    def speak(self, text: str) -> str:
        """`text` with the user's labels name for `labels` (a word of code, not part of another name)."""
        return re.sub(r"(?<![\w.])labels\b", lambda _: self.labels, text) if self.labels != "labels" else text


# torch.nn loss classes and their torch.nn.functional forms
FUNCTIONAL_LOSSES = {"CrossEntropyLoss": "cross_entropy", "BCEWithLogitsLoss": "binary_cross_entropy_with_logits",
                     "BCELoss": "binary_cross_entropy", "NLLLoss": "nll_loss", "MSELoss": "mse_loss",
                     "L1Loss": "l1_loss", "SmoothL1Loss": "smooth_l1_loss", "HuberLoss": "huber_loss",
                     "KLDivLoss": "kl_div"}


def _as_recipe(name: str, method):
    """`method` returning a `Recipe`: its text (or the recipe it composed) with the edits `_EDITS` gives for it."""
    signature = inspect.signature(method)
    edits_of = _EDITS.get(name)

    @functools.wraps(method)
    def recipe(self, *args, **kwargs) -> Recipe:
        made = method(self, *args, **kwargs)
        made = made if isinstance(made, Recipe) else Recipe(made)
        if edits_of is None:   # advice, or a recipe composed of others that carries their edits
            return made
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        return replace(made, edits=edits_of(*bound.args, **bound.kwargs))
    recipe.recipe_of = name
    return recipe


class Recipes:
    framework = "generic"
    model_var = "model"

    def __init__(self, library: str = "", names: ScriptNames | None = None):
        self.library = library   # the library that built the model (`Trace.library`): fixes in its words
        self.names = names or ScriptNames()   # the training code's own names, when shapecheck saw its loss call

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _attach_recipes(cls)

    def path(self, layer_name: str) -> str:
        """The expression that reaches a layer from the model object."""
        return f"{self.model_var}.{layer_name}" if layer_name else self.model_var

    def display(self, layer_name: str) -> str:
        """How messages name a layer: its dotted name, unless that would read as a bare number."""
        return layer_name

    def replace_head(self, layer: Layer, outputs: int, activation: str | None = None) -> Recipe:
        """A layer like `layer` with `outputs` outputs, followed by `activation` where the framework puts it there."""
        raise NotImplementedError

    def add_classifier(self, features: int, outputs: int, activation: str | None = None) -> Recipe:
        """A new classifier on the model's `features`-wide output (it returns features, not class scores)."""
        raise NotImplementedError

    def join_features(self, op: str) -> Recipe:
        """Join several per-sample feature tensors along the feature axis."""
        raise NotImplementedError

    def pad_spatial(self, padding: tuple[int, ...]) -> Recipe:
        """Pad the input's spatial sides at the end by `padding` (height first)."""
        raise NotImplementedError

    def embed_columns(self) -> Recipe:
        """One embedding per integer column of the input, joined per sample."""
        raise NotImplementedError

    def same_padding(self) -> Recipe:
        """Convolutions that keep the map size."""
        raise NotImplementedError

    def crop_labels(self, margins: list[int]) -> Recipe:
        """Cut `margins` off each side of the labels' spatial axes."""
        raise NotImplementedError

    def permute_output(self, order: tuple[int, ...]) -> Recipe:
        """Reorder the output's axes before the loss."""
        raise NotImplementedError

    def remap_labels(self) -> Recipe:
        """Number the classes 0..C-1 once, over the whole dataset: advice, since a per-batch renumbering
        (`unique(return_inverse=True)`) gives the same class a different id in every batch."""
        raise NotImplementedError

    def finite_rows(self) -> Recipe:
        """Keep only the samples whose labels are all finite."""
        raise NotImplementedError

    def linear(self, in_features: int, out_features: int) -> Recipe:
        raise NotImplementedError

    def replace_linear_input(self, layer: Layer, in_features: int) -> Recipe:
        raise NotImplementedError

    def replace_conv_input(self, layer: Layer, in_channels: int) -> Recipe:
        raise NotImplementedError

    def labels_steps(self, *steps: LabelStep) -> Recipe:
        """The labels transformed by `steps`, as a statement: `labels = labels.float().unsqueeze(1)`."""
        expression = self.labels_expression(*steps)
        return replace(expression, text=f"labels = {expression.text}")

    def labels_expression(self, *steps: LabelStep) -> Recipe:
        """The labels transformed by `steps`, as an expression: `labels.float().unsqueeze(1)`."""
        return Recipe("labels" + "".join(self.label_step(*step) for step in steps), labels_edit(*steps))

    def label_step(self, op: str, *args) -> str:
        """One label step as it chains onto the labels. Tensor methods in every framework today: NumPy arrays share
        most of them (`.squeeze(1)`, `.reshape(...)`, ` - 1`)."""
        return _CHAINED_STEPS[op](*args)

    def squeeze(self, axis: int) -> Recipe:
        raise NotImplementedError

    def unsqueeze(self, axis: int) -> Recipe:
        raise NotImplementedError

    def to_dtype(self, dtype: str) -> Recipe:
        raise NotImplementedError

    def argmax(self, axis: int) -> Recipe:
        raise NotImplementedError

    def logits_loss(self, loss) -> Recipe:
        """The form of `loss` that takes raw logits."""
        raise NotImplementedError

    def probability_loss(self, loss) -> Recipe:
        """The form of `loss` that takes probabilities (or log-probabilities)."""
        raise NotImplementedError

    def binary_loss(self, from_logits: bool) -> Recipe:
        """A binary cross-entropy with per-sample 0/1 labels shaped like the output."""
        raise NotImplementedError

    def class_index_loss(self, loss) -> Recipe:
        """The form of a one-hot loss that takes class ids, keeping its from_logits."""
        raise NotImplementedError

    def one_hot(self, ids: str, classes: int) -> Recipe:
        raise NotImplementedError

    def drop_first_class(self, axis: int) -> Recipe:
        raise NotImplementedError

    def pool_after(self, layer: Layer) -> Recipe:
        raise NotImplementedError

    def activation_call(self, activation: str, axis: int) -> Recipe:
        """An inline call such as `F.softmax(x, dim=1)`."""
        raise NotImplementedError

    def one_hot_loss(self, loss) -> Recipe:
        """The form of a class-index loss that takes one-hot (per-class) labels."""
        raise NotImplementedError

    def end_with(self, activation: str, axis: int = 1) -> Recipe:
        """Code that applies `activation` (sigmoid, softmax, log_softmax) to the model's logits."""
        raise NotImplementedError

    def positive_mask(self, dtype: str) -> Recipe:
        """Labels become 1 where they are > 0, in `dtype`."""
        raise NotImplementedError

    def unscale_ids(self, scale: int) -> Recipe:
        """Class ids that were divided by `scale` (a mask read as an image) become whole ids again."""
        raise NotImplementedError

    def loss(self, name: str, **options) -> Recipe:
        """The loss `name` (a PyTorch class name, translated where the framework differs) with keyword `options`."""
        raise NotImplementedError

    def move_class_axis(self, rank: int) -> Recipe:
        raise NotImplementedError

    def resize_output(self) -> Recipe:
        raise NotImplementedError

    def flatten_before(self, layer: Layer, in_features: int) -> Recipe:
        raise NotImplementedError

    def gray_to_rgb(self, channels: int) -> Recipe:
        raise NotImplementedError

    def repeat_channels(self, channels: int) -> Recipe:
        """A one-channel image batch repeated to `channels` channels, on the framework's channel axis."""
        raise NotImplementedError

    def channels_first(self, rank: int) -> Recipe:
        """Code that moves the input's last axis to axis 1."""
        raise NotImplementedError

    def swap_axes(self, first: int, second: int) -> Recipe:
        raise NotImplementedError

    def time_major(self, rank: int) -> Recipe:
        """[N, C, L] features to the [L, N, C] a time-major recurrent layer reads."""
        raise NotImplementedError

    def replace_norm(self, layer: Layer, features: int) -> Recipe:
        raise NotImplementedError

    def channels_last(self, rank: int) -> Recipe:
        """Code that moves the input's axis 1 last."""
        raise NotImplementedError

    def cast_input(self, dtype: str) -> Recipe:
        raise NotImplementedError

    def recurrent_batch_first(self, layer: Layer) -> Recipe:
        raise NotImplementedError

    def recurrent_input_size(self, layer: Layer, input_size: int) -> Recipe:
        raise NotImplementedError

    def return_last_step(self, layer: Layer) -> Recipe:
        """Keep only the last time step of a recurrent layer's output."""
        raise NotImplementedError

    def pool_before(self, layer: Layer) -> Recipe:
        """Pool a feature map to one vector per sample before `layer`."""
        raise NotImplementedError

    def dynamic_batch_export(self, input_name: str) -> Recipe:
        """The export call that leaves the batch dimension free."""
        raise NotImplementedError

    def flatten_per_sample(self) -> Recipe:
        raise NotImplementedError

    def reshape_per_sample(self, sample_shape: tuple[int, ...]) -> Recipe:
        """A reshape that names one sample's shape and leaves the batch free."""
        raise NotImplementedError

    def adaptive_pool(self, height: int, width: int) -> Recipe:
        raise NotImplementedError


def _chained_cast(dtype: str) -> str:
    return "." + TORCH_CASTS.get(dtype, f"to(torch.{dtype})")


def _shape(sizes: tuple[int, ...]) -> str:
    """`8, 4`; a single size keeps its comma (`32,`) so that it still reads as a shape."""
    return ", ".join(map(str, sizes)) + ("," if len(sizes) == 1 else "")


_CHAINED_STEPS = {
    "cast": _chained_cast,
    "unsqueeze": lambda axis: f".unsqueeze({axis})",
    "squeeze": lambda axis: f".squeeze({axis})",
    "argmax": lambda axis: f".argmax({axis})",
    "shift": lambda by: f" + {by}" if by > 0 else f" - {-by}",
    "divide": lambda by: f" / {by}",
    "first_channels": lambda count: f"[:, :{count}]",
    "reshape": lambda sizes: f".reshape({_shape(sizes)})",
    "view": lambda sizes: f".view({', '.join(map(str, sizes))})",
}

# the methods of the contract that return a Recipe (the others, `path` and `display`, name things)
_RECIPES = tuple(name for name, member in vars(Recipes).items()
                 if getattr(member, "__annotations__", {}).get("return") == "Recipe")


def _attach_recipes(cls):
    """Wrap every recipe `cls` resolves (its own, a mixin's such as `NumpyLabels`) that is not wrapped yet."""
    for name in _RECIPES:
        method = getattr(cls, name)
        if not hasattr(method, "recipe_of"):
            setattr(cls, name, _as_recipe(name, method))


_attach_recipes(Recipes)


class NumpyLabels:
    """Label recipes in NumPy, for frameworks whose labels are arrays (Keras, ONNX runtimes)."""

    def finite_rows(self) -> str:
        return "keep = np.isfinite(labels).reshape(len(labels), -1).all(1); x, labels = x[keep], labels[keep]"

    def remap_labels(self) -> str:
        return ("class_id = {v: i for i, v in enumerate(sorted(set(all_labels)))}  # once, over the whole dataset; "
                "then labels = np.array([class_id[v] for v in labels])")

    def squeeze(self, axis: int) -> str:
        return f"labels = np.squeeze(labels, axis={axis})"

    def unsqueeze(self, axis: int) -> str:
        return f"labels = np.expand_dims(labels, axis={axis})"

    def to_dtype(self, dtype: str) -> str:
        return f'labels = labels.astype("{dtype}")'

    def argmax(self, axis: int) -> str:
        return f"labels = np.argmax(labels, axis={axis})"

    def positive_mask(self, dtype: str) -> str:
        return f'labels = (labels > 0).astype("{dtype}")'

    def unscale_ids(self, scale: int) -> str:
        return f'labels = np.rint(labels * {scale}).astype("int64")'


# the call that exports a graph again, by the producer the graph names
EXPORT_CALLS = {"pytorch": 'torch.onnx.export(model, (x,), "model.onnx")',
                "tf2onnx": 'tf2onnx.convert.from_keras(model, output_path="model.onnx")',
                "keras2onnx": 'onnx.save(keras2onnx.convert_keras(model), "model.onnx")'}


def re_export_note(producer: str) -> str:
    """Where a fix of an exported graph goes: the source model, then the export call, when the exporter is known."""
    export = EXPORT_CALLS.get(producer)
    return f"in the source model, then re-export: {export}" if export else "in the source model, then re-export"


class ReExport:
    """Recipes for an exported ONNX graph: the fix goes into the source model, which is then exported again; what
    is done to the graph's outputs at run time is NumPy, whatever the graph was exported from."""

    _CHANGES_MODEL = ("replace_", "add_", "reshape_per_sample", "flatten_before", "recurrent_", "pool_",
                      "return_last_step", "end_with")
    _ON_OUTPUTS = ("permute_output", "resize_output")

    def __init__(self, recipes: Recipes, runtime: Recipes, producer: str = ""):
        self._recipes = recipes
        self._runtime = runtime
        self._note = re_export_note(producer)

    def __getattr__(self, name):
        if name in self._ON_OUTPUTS:
            return getattr(self._runtime, name)
        method = getattr(self._recipes, name)
        if not name.startswith(self._CHANGES_MODEL):
            return method
        def in_source(*args, **kwargs) -> Recipe:
            return method(*args, **kwargs).commented(self._note)
        return in_source
