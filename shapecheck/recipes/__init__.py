"""Fix recipes: the code a finding suggests, written in the user's framework.

Rules decide *what* to change; a `Recipes` subclass per framework decides how that reads in code. The base class
is the contract every framework implements.
"""

from __future__ import annotations

from shapecheck.trace import Layer


class Recipes:
    framework = "generic"
    model_var = "model"

    def path(self, layer_name: str) -> str:
        """The expression that reaches a layer from the model object."""
        return f"{self.model_var}.{layer_name}" if layer_name else self.model_var

    def display(self, layer_name: str) -> str:
        """How messages name a layer: its dotted name, unless that would read as a bare number."""
        return layer_name

    def replace_head(self, layer: Layer, outputs: int, activation: str | None = None) -> str:
        """A layer like `layer` with `outputs` outputs, followed by `activation` where the framework puts it there."""
        raise NotImplementedError

    def add_classifier(self, features: int, outputs: int, activation: str | None = None) -> str:
        """A new classifier on the model's `features`-wide output (it returns features, not class scores)."""
        raise NotImplementedError

    def join_features(self, op: str) -> str:
        """Join several per-sample feature tensors along the feature axis."""
        raise NotImplementedError

    def pad_spatial(self, padding: tuple[int, ...]) -> str:
        """Pad the input's spatial sides at the end by `padding` (height first)."""
        raise NotImplementedError

    def embed_columns(self) -> str:
        """One embedding per integer column of the input, joined per sample."""
        raise NotImplementedError

    def same_padding(self) -> str:
        """Convolutions that keep the map size."""
        raise NotImplementedError

    def crop_labels(self, margins: list[int]) -> str:
        """Cut `margins` off each side of the labels' spatial axes."""
        raise NotImplementedError

    def permute_output(self, order: tuple[int, ...]) -> str:
        """Reorder the output's axes before the loss."""
        raise NotImplementedError

    def remap_labels(self) -> str:
        """Renumber the label values as 0..C-1, in their sorted order."""
        raise NotImplementedError

    def finite_rows(self) -> str:
        """Keep only the samples whose labels are all finite."""
        raise NotImplementedError

    def linear(self, in_features: int, out_features: int) -> str:
        raise NotImplementedError

    def replace_linear_input(self, layer: Layer, in_features: int) -> str:
        raise NotImplementedError

    def replace_conv_input(self, layer: Layer, in_channels: int) -> str:
        raise NotImplementedError

    def labels(self, expression: str) -> str:
        """Code that transforms the labels, e.g. `.float().unsqueeze(1)`."""
        return f"labels = labels{expression}"

    def squeeze(self, axis: int) -> str:
        raise NotImplementedError

    def unsqueeze(self, axis: int) -> str:
        raise NotImplementedError

    def to_dtype(self, dtype: str) -> str:
        raise NotImplementedError

    def argmax(self, axis: int) -> str:
        raise NotImplementedError

    def logits_loss(self, loss) -> str:
        """The form of `loss` that takes raw logits."""
        raise NotImplementedError

    def probability_loss(self, loss) -> str:
        """The form of `loss` that takes probabilities (or log-probabilities)."""
        raise NotImplementedError

    def binary_loss(self, from_logits: bool) -> str:
        """A binary cross-entropy with per-sample 0/1 labels shaped like the output."""
        raise NotImplementedError

    def class_index_loss(self, loss) -> str:
        """The form of a one-hot loss that takes class ids, keeping its from_logits."""
        raise NotImplementedError

    def one_hot(self, ids: str, classes: int) -> str:
        raise NotImplementedError

    def drop_first_class(self, axis: int) -> str:
        raise NotImplementedError

    def pool_after(self, layer: Layer) -> str:
        raise NotImplementedError

    def activation_call(self, activation: str, axis: int) -> str:
        """An inline call such as `F.softmax(x, dim=1)`."""
        raise NotImplementedError

    def one_hot_loss(self, loss) -> str:
        """The form of a class-index loss that takes one-hot (per-class) labels."""
        raise NotImplementedError

    def end_with(self, activation: str, axis: int = 1) -> str:
        """Code that applies `activation` (sigmoid, softmax, log_softmax) to the model's logits."""
        raise NotImplementedError

    def positive_mask(self, dtype: str) -> str:
        """Labels become 1 where they are > 0, in `dtype`."""
        raise NotImplementedError

    def unscale_ids(self, scale: int) -> str:
        """Class ids that were divided by `scale` (a mask read as an image) become whole ids again."""
        raise NotImplementedError

    def loss(self, name: str, argument: str = "") -> str:
        raise NotImplementedError

    def move_class_axis(self, rank: int) -> str:
        raise NotImplementedError

    def resize_output(self) -> str:
        raise NotImplementedError

    def flatten_before(self, layer: Layer, in_features: int) -> str:
        raise NotImplementedError

    def gray_to_rgb(self, channels: int) -> str:
        raise NotImplementedError

    def repeat_channels(self, channels: int) -> str:
        """A one-channel image batch repeated to `channels` channels, on the framework's channel axis."""
        raise NotImplementedError

    def channels_first(self, rank: int) -> str:
        """Code that moves the input's last axis to axis 1."""
        raise NotImplementedError

    def swap_axes(self, first: int, second: int) -> str:
        raise NotImplementedError

    def time_major(self, rank: int) -> str:
        """[N, C, L] features to the [L, N, C] a time-major recurrent layer reads."""
        raise NotImplementedError

    def replace_norm(self, layer: Layer, features: int) -> str:
        raise NotImplementedError

    def channels_last(self, rank: int) -> str:
        """Code that moves the input's axis 1 last."""
        raise NotImplementedError

    def cast_input(self, dtype: str) -> str:
        raise NotImplementedError

    def recurrent_batch_first(self, layer: Layer) -> str:
        raise NotImplementedError

    def recurrent_input_size(self, layer: Layer, input_size: int) -> str:
        raise NotImplementedError

    def return_last_step(self, layer: Layer) -> str:
        """Keep only the last time step of a recurrent layer's output."""
        raise NotImplementedError

    def pool_before(self, layer: Layer) -> str:
        """Pool a feature map to one vector per sample before `layer`."""
        raise NotImplementedError

    def dynamic_batch_export(self, input_name: str) -> str:
        """The export call that leaves the batch dimension free."""
        raise NotImplementedError

    def flatten_per_sample(self) -> str:
        raise NotImplementedError

    def reshape_per_sample(self, sample_shape: tuple[int, ...]) -> str:
        """A reshape that names one sample's shape and leaves the batch free."""
        raise NotImplementedError

    def adaptive_pool(self, height: int, width: int) -> str:
        raise NotImplementedError


class NumpyLabels:
    """Label recipes in NumPy, for frameworks whose labels are arrays (Keras, ONNX runtimes)."""

    def finite_rows(self) -> str:
        return "keep = np.isfinite(labels).reshape(len(labels), -1).all(1); x, labels = x[keep], labels[keep]"

    def remap_labels(self) -> str:
        return "labels = np.unique(labels, return_inverse=True)[1]"

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


class ReExport:
    """Recipes for an exported ONNX graph: the fix goes into the source model, which is then exported again; what
    is done to the graph's outputs at run time is NumPy, whatever the graph was exported from."""

    _CHANGES_MODEL = ("replace_", "add_", "reshape_per_sample", "flatten_before", "recurrent_", "pool_",
                      "return_last_step", "end_with")
    _ON_OUTPUTS = ("permute_output", "resize_output")

    def __init__(self, recipes: Recipes, runtime: Recipes):
        self._recipes = recipes
        self._runtime = runtime

    def __getattr__(self, name):
        if name in self._ON_OUTPUTS:
            return getattr(self._runtime, name)
        method = getattr(self._recipes, name)
        if not name.startswith(self._CHANGES_MODEL):
            return method
        return lambda *args, **kwargs: f"{method(*args, **kwargs)}  # in the source model, then re-export"
