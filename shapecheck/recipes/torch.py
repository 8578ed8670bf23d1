"""Fix recipes in PyTorch code, with the model's real attribute paths and sizes."""

from __future__ import annotations

from shapecheck.edits import Recipe
from shapecheck.recipes import FUNCTIONAL_LOSSES, TORCH_CASTS, Recipes, keyword_arguments
from shapecheck.trace import Layer


class TorchRecipes(Recipes):
    framework = "torch"

    def path(self, layer_name: str) -> str:
        # `classifier.6` is reached as `model.classifier[6]`
        parts = [f"[{p}]" if p.isdigit() else f".{p}" for p in layer_name.split(".") if p]
        return self.model_var + "".join(parts)

    def display(self, layer_name: str) -> str:
        # the children of a top-level nn.Sequential are called `0`, `1`, ...: show them as `model[4]`
        return self.path(layer_name) if layer_name.split(".")[0].isdigit() else layer_name

    def replace_head(self, layer: Layer, outputs: int, activation: str | None = None) -> Recipe | str:
        if self.library.startswith("timm:"):   # timm resizes any head (linear or a 1x1 conv, as in DLA) itself
            return f"model.reset_classifier({outputs})  # or timm.create_model(name, num_classes={outputs})"
        if self.library.startswith("transformers:"):   # the head is built from the config: ask for the labels there
            problem = ', problem_type="multi_label_classification"' if activation == "sigmoid" else ""
            model_class = self.library.partition(":")[2]
            config = built_from_config(layer, model_class)
            if config:   # `BertForSequenceClassification(config)`: the config says how many labels
                return f"{config}(..., num_labels={outputs}{problem})  # the config {model_class} is built from"
            # a checkpoint with another head loads only with ignore_mismatched_sizes=True
            return (f"model = {model_class}.from_pretrained(checkpoint, num_labels={outputs}{problem}, "
                    "ignore_mismatched_sizes=True)")
        path = self.path(layer.name)
        if layer.kind == "linear":
            in_features = layer.config.get("in_features")
            # `model.fc.in_features` reads well, but only when the attribute was not edited away from the weight
            source = f"{path}.in_features" if layer.declared.get("in_features") == in_features else in_features
            return _replacement(f"{path} = nn.Linear({source}, {outputs})")
        if layer.kind == "conv":
            kernel = layer.config.get("kernel_size", (1,))
            kernel = kernel[0] if len(set(kernel)) == 1 else tuple(kernel)
            in_channels = layer.config.get("in_channels")
            return _replacement(f"{path} = nn.{_torch_class(layer)}({in_channels}, {outputs}, kernel_size={kernel})")
        return f"{path} = ...  # a layer with {outputs} outputs"

    def add_classifier(self, features: int, outputs: int, activation: str | None = None) -> str:
        extra = {"sigmoid": ", nn.Sigmoid()", "softmax": ", nn.Softmax(dim=1)"}.get(activation or "", "")
        return f"model = nn.Sequential(model, nn.Linear({features}, {outputs}){extra})"

    def join_features(self, op: str) -> str:
        return f"torch.{op}([a, b], dim=1)"

    def pad_spatial(self, padding: tuple[int, ...]) -> str:
        pads = ", ".join(f"0, {p}" for p in reversed(padding))   # F.pad lists the last axis first
        return f"x = F.pad(x, ({pads}))"

    def embed_columns(self) -> str:
        return "x = torch.cat([emb(x[:, i]) for i, emb in enumerate(self.embeddings)], dim=-1)  # an nn.ModuleList"

    def same_padding(self) -> str:
        return "nn.Conv2d(..., kernel_size=3, padding=1)  # padding=kernel_size // 2, or padding=\"same\""

    def crop_labels(self, margins: list[int]) -> str:
        crops = ", ".join(f"{m}:-{m}" if m else ":" for m in margins)
        return f"labels = labels[..., {crops}]"

    def permute_output(self, order: tuple[int, ...]) -> str:
        return f"output = output.permute{tuple(order)}"

    def remap_labels(self) -> str:
        return ("class_id = {v: i for i, v in enumerate(sorted(set(all_labels)))}  # once, over the whole dataset; "
                "then labels = torch.tensor([class_id[int(v)] for v in labels])")

    def finite_rows(self) -> str:
        return "keep = torch.isfinite(labels).flatten(1).all(1); x, labels = x[keep], labels[keep]"

    def linear(self, in_features: int, out_features: int) -> str:
        return f"nn.Linear({in_features}, {out_features})"

    def replace_linear_input(self, layer: Layer, in_features: int) -> str:
        return f"{self.path(layer.name)} = {self.linear(in_features, layer.config.get('out_features'))}"

    def replace_conv_input(self, layer: Layer, in_channels: int) -> str:
        cfg = layer.config
        kind = _torch_class(layer)
        args = [str(in_channels), str(cfg.get("out_channels")), f"kernel_size={_one(cfg.get('kernel_size'))}"]
        for key, default in (("stride", 1), ("padding", 0), ("dilation", 1)):
            if _one(cfg.get(key, default)) not in (default, str(default)):
                args.append(f"{key}={_one(cfg[key])!r}")
        if cfg.get("groups", 1) != 1 and in_channels % cfg["groups"] == 0:
            args.append(f"groups={cfg['groups']}")
        if "bias" not in layer.params:
            args.append("bias=False")
        return f"{self.path(layer.name)} = nn.{kind}({', '.join(args)})"

    def squeeze(self, axis: int) -> Recipe:
        return self.labels_steps(("squeeze", axis))

    def unsqueeze(self, axis: int) -> Recipe:
        return self.labels_steps(("unsqueeze", axis))

    def to_dtype(self, dtype: str) -> Recipe:
        return self.labels_steps(("cast", dtype))

    def argmax(self, axis: int) -> Recipe:
        return self.labels_steps(("argmax", axis))

    def logits_loss(self, loss) -> Recipe:
        return self.loss("BCEWithLogitsLoss" if loss.family == "binary" else "CrossEntropyLoss")

    def probability_loss(self, loss) -> Recipe:
        if loss.family == "binary":
            return self.loss("BCELoss")
        return self.loss("NLLLoss").commented("after log_softmax")

    def binary_loss(self, from_logits: bool) -> Recipe:
        name = "BCEWithLogitsLoss" if from_logits else "BCELoss"
        return self.loss(name).commented("labels.float(), shaped like the output")

    def class_index_loss(self, loss) -> Recipe:
        return self.loss("CrossEntropyLoss")

    def one_hot(self, ids: str, classes: int) -> str:
        return f"labels = F.one_hot({ids}, {classes}).float()"

    def drop_first_class(self, axis: int) -> str:
        return "labels = labels[:, 1:]" if axis == 1 else "labels = labels[..., 1:]"

    def pool_after(self, layer: Layer) -> str:
        rank = len(layer.output.shape) if layer.output is not None else 4
        axes = tuple(range(2, max(rank, 3)))
        return f"out = out.mean(dim={axes[0] if len(axes) == 1 else axes})  # after {self.display(layer.name)}"

    def activation_call(self, activation: str, axis: int) -> str:
        return f"F.{activation}(x, dim={axis})"

    def one_hot_loss(self, loss) -> Recipe:
        return self.loss("CrossEntropyLoss").commented("takes per-class float labels too: labels.float()")

    def end_with(self, activation: str, axis: int = 1) -> str:
        if activation == "sigmoid":
            return "return torch.sigmoid(logits)"
        return f"return F.{activation}(logits, dim={axis})"

    def positive_mask(self, dtype: str) -> str:
        return f"labels = (labels > 0).{TORCH_CASTS[dtype]}"

    def unscale_ids(self, scale: int) -> str:
        return f"labels = (labels * {scale}).round().long()  # or read the mask with PILToTensor(), not ToTensor()"

    def loss(self, name: str, **options) -> str:
        names = self.names
        if names.functional and name in FUNCTIONAL_LOSSES:   # the script calls a function: the same, renamed
            module = names.loss.rpartition(".")[0]
            call = f"{module + '.' if module else ''}{FUNCTIONAL_LOSSES[name]}"
            extra = f", {keyword_arguments(options)}" if options else ""
            return f"loss = {call}({names.output}, labels{extra})"
        return f"{names.loss} = nn.{name}({keyword_arguments(options)})"

    def move_class_axis(self, rank: int) -> str:
        order = ", ".join(["0", str(rank - 1)] + [str(i) for i in range(1, rank - 1)])
        loss, output = self.names.loss, self.names.output
        if rank == 3:
            return f"loss = {loss}({output}.transpose(1, 2), labels)"
        return f"loss = {loss}({output}.permute({order}), labels)"

    def resize_output(self) -> str:
        return 'output = F.interpolate(output, size=labels.shape[-2:], mode="bilinear", align_corners=False)'

    def flatten_before(self, layer: Layer, in_features: int) -> str:
        out_features = layer.config.get("out_features")
        return f"{self.path(layer.name)} = nn.Sequential(nn.Flatten(), nn.Linear({in_features}, {out_features}))"

    def gray_to_rgb(self, channels: int) -> str:
        return f"x = x.expand(-1, {channels}, -1, -1)"

    def repeat_channels(self, channels: int) -> str:
        return f"x = x.expand(-1, {channels}, -1, -1)"

    def channels_first(self, rank: int) -> str:
        order = ", ".join(["0", str(rank - 1)] + [str(i) for i in range(1, rank - 1)])
        return f"x = x.permute({order})"

    def swap_axes(self, first: int, second: int) -> str:
        return f"x = x.transpose({first}, {second})"

    def time_major(self, rank: int) -> str:
        return "x = x.permute(2, 0, 1)"

    def replace_norm(self, layer: Layer, features: int) -> str:
        return f"{self.path(layer.name)} = nn.{layer.type}({features})"

    def channels_last(self, rank: int) -> str:
        return f"x = x.permute({', '.join(['0'] + [str(i) for i in range(2, rank)] + ['1'])})"

    def cast_input(self, dtype: str) -> str:
        return f"x = x.{TORCH_CASTS.get(dtype, f'to(torch.{dtype})')}"

    def recurrent_batch_first(self, layer: Layer) -> str:
        if layer.kind != "rnn":   # attention and transformer layers take the same flag
            return f"nn.{layer.type}(..., batch_first=True)  # at {self.path(layer.name)}"
        return self._recurrent(layer, layer.config.get("input_size"), batch_first=True)

    def recurrent_input_size(self, layer: Layer, input_size: int) -> str:
        return self._recurrent(layer, input_size, batch_first=layer.config.get("batch_first", False))

    def _recurrent(self, layer: Layer, input_size, batch_first: bool) -> str:
        cfg = layer.config
        args = [str(input_size), str(cfg.get("hidden_size"))]
        if cfg.get("num_layers", 1) != 1:
            args.append(str(cfg["num_layers"]))
        if batch_first:
            args.append("batch_first=True")
        if cfg.get("bidirectional"):
            args.append("bidirectional=True")
        return f"{self.path(layer.name)} = nn.{layer.type}({', '.join(args)})"

    def return_last_step(self, layer: Layer) -> str:
        step = "out[:, -1]" if layer.config.get("batch_first", False) else "out[-1]"
        return f"out = {step}  # the last time step of {self.display(layer.name)}"

    def pool_before(self, layer: Layer) -> str:
        rank = len(layer.inputs[0].shape) if layer.inputs else 4
        dims = min(max(rank - 2, 1), 3)
        return f"x = torch.flatten(F.adaptive_avg_pool{dims}d(x, 1), 1)  # before {self.display(layer.name)}"

    def dynamic_batch_export(self, input_name: str) -> str:
        return (f'torch.onnx.export(model, (x,), "model.onnx", input_names=["{input_name}"], '
                f'dynamic_axes={{"{input_name}": {{0: "batch"}}}}, dynamo=False)')

    def flatten_per_sample(self) -> str:
        return "x = x.view(x.size(0), -1)"

    def reshape_per_sample(self, sample_shape: tuple[int, ...]) -> str:
        return f"x = x.view(x.size(0), {', '.join(map(str, sample_shape))})"

    def adaptive_pool(self, height: int, width: int) -> str:
        size = height if height == width else (height, width)
        return f"x = F.adaptive_avg_pool2d(x, {size})  # before the flatten"


def built_from_config(layer: Layer, model_class: str) -> str:
    """The call that built the config a Hugging Face model was made from at the user's line (`BertConfig`), or ""
    when the model came from `from_pretrained` (or shapecheck cannot tell)."""
    from shapecheck import decides

    if layer.source is None or layer.source.defined_in is None:
        return ""
    decision = decides.model_config(layer.source, model_class, "num_labels")
    return decision.callee if decision else ""


def _replacement(statement: str) -> Recipe:
    """A statement that replaces a layer: a patch inserts it after the user's call into the library that built it."""
    return Recipe(statement, insert=statement)


def _one(value):
    """`(3, 3)` prints as `3`, `(3, 5)` stays a tuple."""
    if isinstance(value, (tuple, list)):
        return value[0] if len(set(value)) == 1 else tuple(value)
    return value



def _torch_class(layer: Layer) -> str:
    """The nn class to write: the layer's own, or for an ONNX node (`Conv`, `Gemm`) the module it came from."""
    if layer.type in ("Conv", "ConvTranspose"):
        return f"{layer.type}{len(layer.config.get('kernel_size', (1, 1)))}d"
    return "Linear" if layer.type in ("Gemm", "MatMul") else layer.type
