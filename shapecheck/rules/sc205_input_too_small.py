from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.shapes import fmt


class InputTooSmall(Rule):
    code = "SC205"
    name = "input-too-small"
    category = "input_shape"
    summary = "The input is too small for the network's kernels and downsampling"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        failure = ctx.trace.failure
        layer = ctx.trace.layer(failure.layer) if failure else None
        if layer is None or layer.kind not in ("conv", "pool") or not layer.inputs:
            return
        x = layer.inputs[0].shape
        spatial = x[2:]
        kernel = layer.config.get("kernel_size")
        if not spatial or kernel is None or isinstance(layer.config.get("padding"), str):
            return
        padding = layer.config.get("padding", (0,) * len(spatial))   # window settings: one int per spatial axis
        dilation = layer.config.get("dilation", (1,) * len(spatial))
        reach = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        if all(s + 2 * p >= r for s, p, r in zip(spatial, padding, reach)):
            return
        image = ctx.trace.inputs[0].shape
        scale = image[2] // spatial[0] if len(image) == len(x) and spatial[0] else 1
        needed = max(r - 2 * p for r, p in zip(reach, padding)) * max(scale, 1)
        size = "x".join(map(str, spatial))
        message = (f"{ref(ctx, layer.name)} ({layer.type}) gets a {size} map {fmt(x)}, smaller than its "
                   f"{'x'.join(map(str, kernel))} kernel: the input {fmt(image)} is too small for this network")
        yield self.finding(message, layer, [Fix(f"Use inputs of at least {needed}x{needed} "
                                                f"(the network downsamples {scale}x before {ref(ctx, layer.name)})")])
