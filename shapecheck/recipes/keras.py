"""Fix recipes in Keras code, with the model's real layer names and sizes."""

from __future__ import annotations

from shapecheck import decides
from shapecheck.edits import Recipe
from shapecheck.recipes import NumpyLabels, Recipes
from shapecheck.trace import Layer


class KerasRecipes(NumpyLabels, Recipes):
    framework = "keras"

    def path(self, layer_name: str) -> str:
        return f'model.get_layer("{layer_name.rpartition(".")[2]}")' if layer_name else self.model_var

    def replace_head(self, layer: Layer, outputs: int, activation: str | None = None) -> Recipe | str:
        if self.library.startswith("keras.applications"):   # rebuild without the ImageNet top, add a head
            function = self.library.partition(":")[2] or "ResNet50"
            act = f', activation="{activation}"' if activation else ""
            if layer.source is not None and decides.without_weights(layer.source, function):
                # no pretrained top to keep: its own top takes any class count (softmax is its default activation)
                top = f', classifier_activation="{activation}"' if activation and activation != "softmax" else ""
                return f"keras.applications.{function}(weights=None, classes={outputs}{top}, ...)"
            head = f"layers.Dense({outputs}{act})"
            # the patch keeps the user's call (with include_top=False) and adds the head on the model it returns
            base = f'base = keras.applications.{function}(include_top=False, pooling="avg", weights="imagenet")'
            return Recipe(f"{base}; model = keras.Model(base.input, {head}(base.output))",
                          insert=f"model = keras.Model(model.input, {head}(model.output))")
        act = f'activation="{activation}", ' if activation else ""
        if layer.kind == "conv":
            return f'layers.{layer.type}({outputs}, 1, {act}name="{layer.name}")'
        return f'layers.Dense({outputs}, {act}name="{layer.name}")'

    def add_classifier(self, features: int, outputs: int, activation: str | None = None) -> str:
        act = f', activation="{activation}"' if activation else ""
        return f"model = keras.Model(model.input, layers.Dense({outputs}{act})(model.output))  # on the {features} features"

    def join_features(self, op: str) -> str:
        return "layers.Concatenate(axis=-1)([a, b])"

    def pad_spatial(self, padding: tuple[int, ...]) -> str:
        pads = ", ".join(f"(0, {p})" for p in padding)
        return f"x = np.pad(x, ((0, 0), {pads}, (0, 0)))"

    def embed_columns(self) -> str:
        return "x = layers.Concatenate()([emb(ids[:, i]) for i, emb in enumerate(embeddings)])"

    def same_padding(self) -> str:
        return 'layers.Conv2D(..., padding="same")'

    def crop_labels(self, margins: list[int]) -> str:
        crops = ", ".join(f"{m}:-{m}" if m else ":" for m in margins)
        return f"labels = labels[:, {crops}]"

    def permute_output(self, order: tuple[int, ...]) -> str:
        return f"output = keras.ops.transpose(output, {tuple(order)})"

    def linear(self, in_features: int, out_features: int) -> str:
        return f"layers.Dense({out_features})  # receives {in_features} features"

    def replace_linear_input(self, layer: Layer, in_features: int) -> str:
        units = layer.config.get("out_features")
        return f'layers.Dense({units}, name="{layer.name}")  # a new layer builds for the {in_features} features it gets'

    def replace_conv_input(self, layer: Layer, in_channels: int) -> str:
        return f"keras.Input(shape=(height, width, {in_channels}))  # and rebuild {layer.name} on it"

    def logits_loss(self, loss) -> str:
        return f"model.compile(loss=keras.losses.{_class_name(loss.name)}(from_logits=True), ...)"

    def probability_loss(self, loss) -> str:
        return f"model.compile(loss=keras.losses.{_class_name(loss.name)}(from_logits=False), ...)"

    def binary_loss(self, from_logits: bool) -> str:
        return f"model.compile(loss=keras.losses.BinaryCrossentropy(from_logits={from_logits}), ...)"

    def class_index_loss(self, loss) -> str:
        return (f"model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits={bool(loss.from_logits)}),"
                " ...)")

    def one_hot(self, ids: str, classes: int) -> str:
        return f"labels = keras.utils.to_categorical({ids}, {classes})"

    def drop_first_class(self, axis: int) -> str:
        return "labels = labels[..., 1:]"

    def pool_after(self, layer: Layer) -> str:
        return f"x = layers.GlobalAveragePooling{_map_dims(layer.output)}D()(x)  # after {layer.name}"

    def activation_call(self, activation: str, axis: int) -> str:
        return f"keras.ops.{activation}(x, axis={axis})"

    def one_hot_loss(self, loss) -> str:
        return 'model.compile(loss="categorical_crossentropy", ...)'

    def end_with(self, activation: str, axis: int = -1) -> str:
        return f'layers.Activation("{activation}")  # as the last layer'

    def loss(self, name: str, **options) -> str:
        keras_names = {"BCEWithLogitsLoss": 'keras.losses.BinaryCrossentropy(from_logits=True)',
                       "BCELoss": '"binary_crossentropy"', "CrossEntropyLoss": '"sparse_categorical_crossentropy"',
                       "NLLLoss": '"sparse_categorical_crossentropy"', "MSELoss": '"mse"'}
        if "ignore_index" in options:   # Keras 3 calls it ignore_class
            value = options["ignore_index"]
            return f"model.compile(loss=keras.losses.SparseCategoricalCrossentropy(ignore_class={value!r}), ...)"
        return f"model.compile(loss={keras_names.get(name, repr(name))}, ...)"

    def move_class_axis(self, rank: int) -> str:
        return "keep the classes on the last axis (Keras losses read axis -1)"

    def resize_output(self) -> str:
        return "layers.Resizing(height, width)  # to the label size, before the loss"

    def flatten_before(self, layer: Layer, in_features: int) -> str:
        return f"x = layers.Flatten()(x)  # before {layer.name}"

    def gray_to_rgb(self, channels: int) -> str:
        return f"x = np.repeat(x[..., None], {channels}, axis=-1)  # grayscale to {channels} channels"

    def repeat_channels(self, channels: int) -> str:
        return f"x = np.repeat(x, {channels}, axis=-1)"

    def channels_first(self, rank: int) -> str:
        order = ", ".join(["0", str(rank - 1)] + [str(i) for i in range(1, rank - 1)])
        return f"x = np.transpose(x, ({order}))  # channels first"

    def channels_last(self, rank: int) -> str:
        order = ", ".join(["0"] + [str(i) for i in range(2, rank)] + ["1"])
        return f"x = np.transpose(x, ({order}))  # channels last"

    def cast_input(self, dtype: str) -> str:
        return f'x = x.astype("{dtype}")'

    def recurrent_batch_first(self, layer: Layer) -> str:
        return "x = np.transpose(x, (1, 0, 2))  # Keras recurrent layers read (batch, time, features)"

    def recurrent_input_size(self, layer: Layer, input_size: int) -> str:
        units = layer.config.get("hidden_size")
        return f'layers.{layer.type}({units}, name="{layer.name}")  # a new layer builds for {input_size} features'

    def time_major(self, rank: int) -> str:
        return "x = np.transpose(x, (0, 2, 1))"

    def replace_norm(self, layer: Layer, features: int) -> str:
        return f'layers.{layer.type}(axis=-1, name="{layer.name}")  # normalises the last axis ({features})'

    def swap_axes(self, first: int, second: int) -> str:
        return f"x = np.swapaxes(x, {first}, {second})"

    def dynamic_batch_export(self, input_name: str) -> str:
        return ('tf2onnx.convert.from_keras(model, input_signature=[tf.TensorSpec((None, *shape), tf.float32)])')

    def flatten_per_sample(self) -> str:
        return "layers.Flatten()"

    def reshape_per_sample(self, sample_shape: tuple[int, ...]) -> str:
        return f"layers.Reshape({tuple(sample_shape)})  # the shape of one sample; the batch axis is left out"

    def adaptive_pool(self, height: int, width: int) -> str:
        return "layers.GlobalAveragePooling2D()"

    def return_last_step(self, layer: Layer) -> str:
        units = layer.config.get("hidden_size")
        return f'layers.{layer.type}({units}, return_sequences=False, name="{layer.name}")'

    def pool_before(self, layer: Layer) -> str:
        return f"x = layers.GlobalAveragePooling{_map_dims(layer.inputs[0] if layer.inputs else None)}D()(x)  # before {layer.name}"


def _map_dims(tensor) -> int:
    """1, 2 or 3 for the map a tensor holds ([N, L, C], [N, H, W, C], ...); 2 when unknown."""
    rank = len(tensor.shape) if tensor is not None else 4
    return min(max(rank - 2, 1), 3)


def _class_name(loss_name: str) -> str:
    """`binary_crossentropy` -> `BinaryCrossentropy`, the class form that takes `from_logits`."""
    special = {"kl_divergence": "KLDivergence", "log_cosh": "LogCosh"}
    return special.get(loss_name) or "".join(part.capitalize() for part in loss_name.split("_"))
