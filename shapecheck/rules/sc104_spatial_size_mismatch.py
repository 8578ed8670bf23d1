from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import class_axis, index_target_shape, loss_ready, output_phrase, same_batch
from shapecheck.rules.predicates import axis_order
from shapecheck.shapes import fmt


class SpatialSizeMismatch(Rule):
    code = "SC104"
    name = "spatial-size-mismatch"
    category = "output_vs_loss"
    summary = "A dense-prediction output is smaller or larger than the label map"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100", "SC102"})

    def check(self, ctx):
        if not loss_ready(ctx) or not same_batch(ctx):
            return
        out, lab = ctx.output.shape, ctx.labels.shape
        if len(out) < 4:
            return
        axis = class_axis(ctx)
        spatial = index_target_shape(ctx)[1:]
        label_spatial = lab[1:] if len(lab) == len(out) - 1 else (lab[:axis] + lab[axis + 1:])[1:] \
            if len(lab) == len(out) else None
        if label_spatial is None or len(label_spatial) != len(spatial) or label_spatial == spatial:
            return
        if axis_order(out, lab) is not None:
            return   # the same sizes in another axis order: a layout, not a smaller or larger map
        if ctx.loss.wants_class_indices and ctx.labels.shape[:-1] == index_target_shape(ctx):
            return  # the spatial sizes match, with a trailing class or colour axis
        size = "x".join(map(str, spatial))
        wanted = "x".join(map(str, label_spatial))
        message = f"{output_phrase(ctx)}: {size} maps, but the labels {fmt(lab)} are {wanted}"
        unpadded = _unpadded_convs(ctx)
        trimmed = {w - o for o, w in zip(spatial, label_spatial)}   # unpadded convolutions trim every side alike
        if unpadded and len(trimmed) == 1 and trimmed.pop() > 0:
            yield self.finding(message + f"; {unpadded} unpadded convolutions shrink every map by their kernel's border",
                               ctx.head, _unpadded_fixes(ctx, spatial, label_spatial))
            return
        fixes = [Fix("Resize the output to the label size before the loss", ctx.recipes.resize_output())]
        stride = _stride(ctx) if ctx.loss.class_axis == 1 else 1   # the hint reads a channels-first input
        image_sides = ctx.trace.inputs[0].shape[2:]
        mismatched = [d for d, o, w in zip(image_sides, spatial, label_spatial) if o != w]
        if stride > 1 and mismatched and all(d % stride for d in mismatched):
            image = "x".join(map(str, ctx.trace.inputs[0].shape[2:]))
            fixes.append(Fix(f"Or pad/crop inputs to a multiple of {stride} (the network's stride); {image} is not"))
        yield self.finding(message, ctx.head, fixes)


def _stride(ctx) -> int:
    """How much the network downsamples: the input's height over the smallest map height in the trace."""
    height = ctx.trace.inputs[0].shape[2] if len(ctx.trace.inputs[0].shape) >= 4 else 0
    maps = [t.shape[2] for layer in ctx.trace.layers for t in layer.outputs if len(t.shape) >= 4 and t.shape[2]]
    return round(height / min(maps)) if height and maps else 1   # 250 -> 125 -> 63 is a stride of 4


def _unpadded_convs(ctx) -> int:
    """How many convolutions with a kernel wider than 1 run without padding ('valid'): each trims the map."""
    count = 0
    for layer in ctx.trace.layers:
        config = layer.config
        if layer.kind != "conv" or not layer.calls or "ConvTranspose" in layer.type or "Conv2DTranspose" in layer.type:
            continue
        kernel, padding = config.get("kernel_size", (1,)), config.get("padding", (0,))   # one int per axis
        unpadded = padding == "valid" or (not isinstance(padding, str) and padding[0] == 0)
        if kernel[0] > 1 and unpadded:
            count += 1
    return count


def _unpadded_fixes(ctx, spatial: tuple, label_spatial: tuple) -> list[Fix]:
    """A 'valid' U-Net predicts the centre of its input: resizing would misalign every pixel with its label."""
    fixes = [Fix("Pad the convolutions so each keeps its map size", ctx.recipes.same_padding())]
    margins = [(w - o) // 2 for o, w in zip(spatial, label_spatial)]
    if all((w - o) % 2 == 0 for o, w in zip(spatial, label_spatial)):
        fixes.append(Fix("Or crop the labels to the centre the output covers", ctx.recipes.crop_labels(margins)))
    return fixes
