import math

from shapecheck.edits import Recipe
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import failed_layer, from_phrase, ref
from shapecheck.shapes import fmt


class LinearInFeaturesMismatch(Rule):
    code = "SC201"
    name = "linear-in-features-mismatch"
    category = "internal_layer"
    summary = "A Linear layer's in_features differ from the features that reach it"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        layer = failed_layer(ctx, "linear")
        if layer is None:
            return
        x = layer.inputs[0]
        expected, actual, outputs = layer.config.get("in_features"), x.shape[-1], layer.config.get("out_features")
        if expected is None:
            return
        if actual == expected:
            return
        message = (f"{ref(ctx, layer.name)} ({layer.type}) expects {expected} input features but receives {fmt(x.shape)}"
                   f"{from_phrase(ctx, layer)}")
        fixes = [Fix(f"Change `{ctx.recipes.linear(expected, outputs)}` to `{ctx.recipes.linear(actual, outputs)}`",
                     Recipe("", ctx.recipes.replace_linear_input(layer, actual).edits))]
        flattened = _flattened_map(ctx, layer)
        if flattened is not None:
            note, fix = _resolution_hint(ctx, flattened, expected)
            message += note
            fixes.extend(fix)
        yield self.finding(message, layer, fixes)


def _flattened_map(ctx, layer):
    """The 4-D map [N, C, H, W] flattened into this layer's input and the op that flattened it, if it was."""
    producers = layer.input_producers
    for op in ctx.trace.producer_chain(producers[0] if producers else None):
        if op.name in ("flatten", "view", "reshape") and op.inputs and len(op.inputs[0].shape) == 4:
            return op.inputs[0].shape, op
        if op.name not in ("flatten", "view", "reshape", "dropout", "contiguous"):
            return None
    return None


def _resolution_hint(ctx, flattened, expected):
    """A layer sized for C x s x s maps fed C x H x W maps: the input resolution changed since it was written."""
    feature_map, flatten_op = flattened
    channels_last = ctx.trace.framework == "keras"
    height, width, channels = feature_map[1:] if channels_last else (*feature_map[2:], feature_map[1])
    side = math.isqrt(expected // channels) if expected % channels == 0 else 0
    image = ctx.trace.inputs[0].shape
    if side == 0 or side * side * channels != expected or len(image) != 4 or height == side:
        return "", []
    image_h, image_w = image[1:3] if channels_last else image[2:4]
    designed = _designed_input(ctx, flatten_op, image_h, height, side) or image_h * side // height
    def maps(h, w):   # in the layout of the framework: C x H x W, or H x W x C in Keras
        return f"{h}x{w}x{channels}" if channels_last else f"{channels}x{h}x{w}"

    note = (f"; it was sized for {maps(side, side)} maps (a {designed}x{designed} input), the "
            f"{image_h}x{image_w} input gives {maps(height, width)}")
    fixes = [Fix(f"Feed {designed}x{designed} inputs, or pool to a fixed size before the flatten",
                 ctx.recipes.adaptive_pool(side, side))]
    return note, fixes


def _designed_input(ctx, flatten_op, given: int, seen: int, side: int) -> int | None:
    """The input height that gives `side` at the flatten, by running heights through the convolutions and pools
    between the input and the flatten. Several heights round to the same map; the designed one is a multiple of
    the total stride (224, not 193, for ResNet's 7x7), nearest the proportional guess. None when an op on the way
    changes the size in a way its settings do not explain."""
    steps, total_stride = [], 1
    for op in ctx.trace.producer_chain(flatten_op.producers[0] if flatten_op.producers else None):
        step = _height_step(ctx, op)
        if step is None:
            return None
        steps.append(step[0])
        total_stride *= step[1]
    steps.reverse()

    def run(height: int) -> int:
        for step in steps:
            height = step(height)
        return height

    if run(given) != seen:
        return None
    guess = given * side / seen
    candidates = [h for h in range(1, 4 * given + 64) if run(h) == side]
    return min(candidates, key=lambda h: (h % total_stride != 0, abs(h - guess))) if candidates else None


def _height_step(ctx, op):
    """How an op maps an input height to its output height (and its stride), checked against the trace."""
    if not op.inputs or not op.outputs or len(op.inputs[0].shape) != 4 or len(op.outputs[0].shape) != 4:
        return None
    layer = ctx.trace.layer(op.layer)
    channels_last = layer.config["channel_axis"] == -1 if layer is not None and "channel_axis" in layer.config \
        else ctx.trace.framework == "keras"
    axis = 1 if channels_last else 2   # channels-last maps keep H on axis 1
    before, after = op.inputs[0].shape[axis], op.outputs[0].shape[axis]
    config = layer.config if layer is not None and layer.kind in ("conv", "pool") else {}
    if "output_size" in config or (layer is not None and layer.type.startswith("Global")):
        return (lambda height: after), 1      # adaptive or global pooling: a fixed size out
    if "kernel_size" in config:
        step, stride = _window_step(config)
        return (step, stride) if step(before) == after else None
    return ((lambda height: height), 1) if before == after else None


def _window_step(config):
    """out = floor((in + 2p - d(k-1) - 1) / s) + 1, the size rule of convolutions and pools."""
    kernel, stride = config["kernel_size"][0], config.get("stride", (1,))[0] or 1   # height first, per axis
    dilation, padding = config.get("dilation", (1,))[0], config.get("padding", (0,))
    if padding == "same":
        return (lambda height: -(-height // stride)), stride
    pad = 0 if isinstance(padding, str) else padding[0]
    return (lambda height: (height + 2 * pad - dilation * (kernel - 1) - 1) // stride + 1), stride
