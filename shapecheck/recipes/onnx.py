"""Fix recipes in ONNX terms, for graphs whose exporter is not known: name the node and the sizes to change."""

from __future__ import annotations

from shapecheck.recipes import NumpyLabels, Recipes, keyword_arguments
from shapecheck.trace import Layer


class OnnxRecipes(NumpyLabels, Recipes):
    framework = "onnx"

    def path(self, layer_name: str) -> str:
        return f"node '{layer_name}'" if layer_name else "the graph"

    def replace_head(self, layer: Layer, outputs: int, activation: str | None = None) -> str:
        return f"re-export with the {layer.type} at {self.path(layer.name)} producing {outputs} outputs"

    def add_classifier(self, features: int, outputs: int, activation: str | None = None) -> str:
        return f"re-export with a classifier (Gemm weight [{outputs}, {features}]) on the {features} output features"

    def join_features(self, op: str) -> str:
        return "re-export with the Concat on axis 1"

    def pad_spatial(self, padding: tuple[int, ...]) -> str:
        pads = ", ".join(f"(0, {p})" for p in padding)
        return f"x = np.pad(x, ((0, 0), (0, 0), {pads}))"

    def embed_columns(self) -> str:
        return "re-export with each Gather reading its own column of the input ids"

    def same_padding(self) -> str:
        return "re-export with padded convolutions (pads of kernel_size // 2)"

    def crop_labels(self, margins: list[int]) -> str:
        crops = ", ".join(f"{m}:-{m}" if m else ":" for m in margins)
        return f"labels = labels[..., {crops}]"

    def permute_output(self, order: tuple[int, ...]) -> str:
        return f"output = np.transpose(output, {tuple(order)})"

    def linear(self, in_features: int, out_features: int) -> str:
        return f"Gemm weight [{out_features}, {in_features}]"

    def replace_linear_input(self, layer: Layer, in_features: int) -> str:
        return f"re-export with {self.path(layer.name)} taking {in_features} features"

    def replace_conv_input(self, layer: Layer, in_channels: int) -> str:
        return f"re-export with {self.path(layer.name)} taking {in_channels} input channels"

    def logits_loss(self, loss) -> str:
        return "train on the graph's logits with the logits form of the loss"

    def probability_loss(self, loss) -> str:
        return "train on the graph's probabilities with the probability form of the loss"

    def binary_loss(self, from_logits: bool) -> str:
        return f"a binary cross-entropy on {'logits' if from_logits else 'probabilities'}"

    def class_index_loss(self, loss) -> str:
        return "a class-index (sparse) cross-entropy"

    def one_hot(self, ids: str, classes: int) -> str:
        return f"labels = np.eye({classes})[{ids}]"

    def drop_first_class(self, axis: int) -> str:
        return f"labels = np.delete(labels, 0, axis={axis})"

    def one_hot_loss(self, loss) -> str:
        return "a cross-entropy on one-hot labels"

    def end_with(self, activation: str, axis: int = 1) -> str:
        return f"add a {activation.capitalize()} node at the graph output and re-export"

    def activation_call(self, activation: str, axis: int) -> str:
        return f"{activation.capitalize()}(axis={axis})"

    def loss(self, name: str, **options) -> str:
        return f"{name}({keyword_arguments(options)})"

    def move_class_axis(self, rank: int) -> str:
        return "transpose the output so the classes are on axis 1 before the loss"

    def resize_output(self) -> str:
        return 'output = F.interpolate(torch.from_numpy(output), size=labels.shape[-2:], mode="bilinear")'

    def flatten_before(self, layer: Layer, in_features: int) -> str:
        return f"re-export with a Flatten before {self.path(layer.name)} ({in_features} features)"

    def gray_to_rgb(self, channels: int) -> str:
        return f"x = np.repeat(x[:, None], {channels}, axis=1)"

    def repeat_channels(self, channels: int) -> str:
        return f"x = np.repeat(x, {channels}, axis=1)"

    def channels_first(self, rank: int) -> str:
        return f"x = np.transpose(x, (0, {rank - 1}, {', '.join(str(i) for i in range(1, rank - 1))}))"

    def channels_last(self, rank: int) -> str:
        return f"x = np.transpose(x, (0, {', '.join(str(i) for i in range(2, rank))}, 1))"

    def cast_input(self, dtype: str) -> str:
        return f'x = x.astype("{dtype}")'

    def recurrent_batch_first(self, layer: Layer) -> str:
        return f"x = np.transpose(x, (1, 0, 2))  # {self.path(layer.name)} reads (time, batch, features)"

    def recurrent_input_size(self, layer: Layer, input_size: int) -> str:
        return f"re-export with {self.path(layer.name)} taking {input_size} features per step"

    def swap_axes(self, first: int, second: int) -> str:
        return f"x = np.swapaxes(x, {first}, {second})"

    def time_major(self, rank: int) -> str:
        return "x = np.transpose(x, (2, 0, 1))"

    def replace_norm(self, layer: Layer, features: int) -> str:
        return f"re-export with {self.path(layer.name)} normalising {features} channels"

    def return_last_step(self, layer: Layer) -> str:
        return f"re-export taking only the last step of {self.path(layer.name)}"

    def pool_before(self, layer: Layer) -> str:
        return f"re-export with a GlobalAveragePool before {self.path(layer.name)}"

    def pool_after(self, layer: Layer) -> str:
        return f"re-export with a GlobalAveragePool after {self.path(layer.name)}"

    def reshape_per_sample(self, sample_shape: tuple[int, ...]) -> str:
        return f"re-export with the Reshape target [-1, {', '.join(map(str, sample_shape))}]"

    def flatten_per_sample(self) -> str:
        return "re-export with the reshape keeping the batch axis: Reshape(x, [N, -1]) or Flatten(axis=1)"

    def adaptive_pool(self, height: int, width: int) -> str:
        return f"re-export with an adaptive pool to {height}x{width} before the flatten"

    def dynamic_batch_export(self, input_name: str) -> str:
        return f"re-export with dimension 0 of input '{input_name}' symbolic (e.g. 'batch')"
