import math

from shapecheck.findings import Fix
from shapecheck.rules import Rule

MERGE_OPS = ("cat", "stack", "add", "sub", "mul")
MERGE_LAYERS = ("Concatenate", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")


class SkipConnectionSizeMismatch(Rule):
    code = "SC217"
    name = "skip-connection-size-mismatch"
    category = "input_shape"
    summary = "A skip connection joins maps of different sizes: the input size does not halve evenly (U-Net)"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        trace, failure = ctx.trace, ctx.trace.failure
        if failure is None or len(failure.inputs) < 2 or not trace.inputs:
            return
        layer = trace.layer(failure.layer)
        if failure.op not in MERGE_OPS and (layer is None or layer.type not in MERGE_LAYERS):
            return
        sizes = [_spatial(ctx, t.shape) for t in failure.inputs]
        if len({len(s) for s in sizes}) != 1 or not sizes[0] or len(set(sizes)) == 1:
            return
        image = _spatial(ctx, trace.inputs[0].shape)
        steps = _downsampling_steps(ctx, len(image)) if image else None
        if steps is None:
            return
        factor = 2 ** steps
        side = "x".join(map(str, image))
        where = (f"`{ctx.recipes.display(layer.name)}` ({layer.type})" if layer is not None and failure.op is None
                 else f"`{failure.op_spelling}`" + (f" in `{ctx.recipes.display(layer.name)}`" if layer and layer.name else ""))
        maps = " and ".join("x".join(map(str, s)) for s in dict.fromkeys(sizes))
        message = (f"{where} joins {maps} maps from two levels of the network: the {side} input does not halve "
                   f"evenly through its {steps} downsampling steps, so a skip connection no longer lines up "
                   f"(sides must be multiples of {factor})")
        padded = tuple(-(-d // factor) * factor for d in image)
        cropped = tuple(d // factor * factor for d in image)
        fixes = [Fix(f"Pad the inputs to {'x'.join(map(str, padded))}",
                     ctx.recipes.pad_spatial(tuple(p - d for p, d in zip(padded, image))))]
        if all(cropped):
            fixes.append(Fix(f"Or resize or crop them to {'x'.join(map(str, cropped))}, a multiple of {factor}"))
        yield self.finding(message, layer, fixes, location=failure.source)


def _spatial(ctx, shape: tuple) -> tuple:
    """The spatial sizes of a map: after the channel axis, or before it in Keras (channels last)."""
    if len(shape) < 3:
        return ()
    return tuple(shape[1:-1]) if ctx.trace.framework == "keras" else tuple(shape[2:])


def _downsampling_steps(ctx, rank: int) -> int | None:
    """How many times the map is halved on the way from the input to the smallest map traced (the bottom of
    the encoder): a stride-4 op counts twice."""
    smallest = None
    for op in ctx.trace.ops:
        for out in op.outputs:
            size = _spatial(ctx, out.shape)
            if len(size) == rank and size[0] > 0 and (smallest is None or size[0] < smallest[1]):
                smallest = (op, size[0])
    if smallest is None:
        return None
    steps = 0
    for op in ctx.trace.producer_chain(smallest[0].index):
        before = _spatial(ctx, op.inputs[0].shape) if op.inputs else ()
        after = _spatial(ctx, op.outputs[0].shape) if op.outputs else ()
        if len(before) == len(after) == rank and 0 < after[0] < before[0]:
            steps += round(math.log2(before[0] / after[0]))
    return steps or None
