import math

from shapecheck.edits import Recipe, labels_edit
from shapecheck.findings import Fix
from shapecheck.oracle import simulate
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape, ref
from shapecheck.shapes import fmt


class LossRejectsOutput(Rule):
    """The catch-all for the loss, as forward-failed is for the forward pass: it reports whenever the framework's own loss
    rejected the output and labels (raised, or broadcast them silently); rules that explain that aspect of the
    loss supersede it."""

    code = "SC100"
    name = "loss-rejects-output"
    category = "output_vs_loss"
    summary = "The framework's own loss rejects the model output with these labels (raises or silently broadcasts)"
    subject = "loss"

    def check(self, ctx):
        verdict = ctx.loss_check
        if verdict is None or not verdict.rejected or ctx.output is None or ctx.labels is None:
            return
        head = ctx.head
        source = f" from {ref(ctx, head.name)}" if head is not None else ""
        output = f"the graph output `{ctx.trace.output_path}`" if ctx.trace.framework == "onnx" else "the output"
        given = f"{output} {fmt(ctx.output.shape)}{source} with labels {fmt(ctx.labels.shape)} {ctx.labels.dtype}"
        if verdict.status == "broadcasts":
            message = f"`{ctx.loss.label}` accepts {given}, but {verdict.message}"
        else:
            message = f"`{ctx.loss.label}` rejects {given}: {verdict.evaluated_by} raises {verdict.message}"
        yield self.finding(message, head, self._fixes(ctx, verdict.aspect), subject=ctx.loss_subject(verdict.aspect))

    def _fixes(self, ctx, aspect: str) -> list[Fix]:
        loss, out, lab = ctx.loss, ctx.output.shape, ctx.labels.shape
        if aspect == "dtype":
            return [Fix(f"Give `{loss.name}` {loss.target_dtype} labels", ctx.recipes.to_dtype(loss.target_dtype))]
        if aspect == "options":
            classes = out[loss.class_axis] if len(out) >= 2 else 1
            return [Fix(f"Give `{loss.name}` one class weight (`weight`, `pos_weight`) per class of the output: "
                        f"{classes}, not the count they were computed for")]
        if aspect == "values":
            return [Fix(f"Check the label values against the {out[loss.class_axis]} outputs: "
                        "`shapecheck check --format json` lists their range")] if len(out) >= 2 else []
        if loss.wants_class_indices:
            wanted, kind = (index_target_shape(ctx) if len(out) >= 2 else ()), "class indices"
            classes = out[loss.class_axis] if len(lab) + 1 == len(out) else "C"   # C: the output's count is unclear
            needed = _with_class_axis(lab, classes, loss.class_axis)
        else:
            wanted, needed, kind = out, fmt(lab), "targets"
        # more axes than a head's outputs: a map or a sequence that was never pooled or flattened
        reshape = "flatten or pool the extra axes before the head" if len(out) > max(len(lab), 2) else "change the head"
        # labels holding as many values as wanted (positions not flattened like the output's): a reshape
        flattened = labels_edit(("reshape", tuple(wanted))) if wanted and math.prod(wanted) == math.prod(lab) else ()
        fixes = [Fix(f"Make the labels {fmt(wanted)}: `{loss.name}` wants {kind} shaped like that for this output",
                     Recipe("", flattened)),
                 Fix(f"Or make the model output {needed} for labels {fmt(lab)}: {reshape}")]
        if ctx.trace.framework == "onnx" and len(out) > len(lab) + loss.wants_class_indices:
            fixes.insert(0, Fix("The graph outputs more axes than a prediction for these labels has (hidden states or "
                                "a feature map): export the model's prediction head, e.g. the classifier's logits"))
        for path, shape in _fitting_outputs(ctx)[:1]:
            fixes.insert(1 if ctx.trace.framework == "onnx" else 0,
                         Fix(f"The model's other output `{path.strip('.')}` {fmt(shape)} fits these labels' shape: if "
                             "it holds the predictions, pass that one to the loss"))
        if _without_ones(lab) == _without_ones(wanted) and wanted:   # the same values, axes of size 1 elsewhere
            fixes[0] = Fix(f"Reshape the labels to {fmt(wanted)}: they hold the right values with axes of size 1 "
                           "elsewhere", ctx.recipes.labels_steps(("reshape", tuple(wanted))))
        return fixes


def _fitting_outputs(ctx) -> list[tuple[str, tuple]]:
    """The model's other outputs (a tuple's items, an exported graph's outputs) that the loss would accept."""
    return [(path, meta.shape) for path, meta in ctx.trace.outputs.items()
            if path != ctx.trace.output_path and not simulate(meta, ctx.labels.meta, None, ctx.loss).rejected]


def _without_ones(shape: tuple) -> tuple:
    return tuple(size for size in shape if size != 1)


def _with_class_axis(labels: tuple, classes, axis: int) -> str:
    """The output shape a class-index loss wants for these labels: [N, C, ...] (PyTorch) or [..., C] (Keras)."""
    sizes = [str(size) for size in labels]
    sizes.insert(1 if axis == 1 else len(sizes), str(classes))
    return "[" + ", ".join(sizes) + "]"
