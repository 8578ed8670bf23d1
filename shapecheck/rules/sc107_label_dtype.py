from shapecheck.edits import Recipe, labels_edit
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape
from shapecheck.shapes import fmt, is_int

# These PyTorch losses promote integer targets to the output's float dtype; BCE and Huber do not.
PROMOTING = ("MSELoss", "L1Loss", "SmoothL1Loss")


class LabelDtype(Rule):
    code = "SC107"
    name = "label-dtype"
    category = "dtype"
    summary = "Labels have a dtype the loss cannot take (float class indices, integer, string or object targets)"
    subject = "loss"
    aspect = "dtype"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if labels is None or loss is None:
            return
        dtype = labels.dtype
        if dtype == "str":
            yield self.finding(f"`{loss.name}` labels {fmt(labels.shape)} are strings; losses take numbers",
                               fixes=[Fix("Map each label name to a class index first",
                                          Recipe("classes = sorted(set(names)); "
                                                 "labels = [classes.index(n) for n in names]", labels_edit(("remap",))))])
            return
        if dtype == "object":
            cast = "int64" if loss.wants_class_indices else "float32"
            yield self.finding(f"`{loss.name}` labels {fmt(labels.shape)} have dtype object (numbers boxed as Python "
                               "objects, as `DataFrame.values` gives for mixed columns): no tensor can be made of them",
                               fixes=[Fix("Convert them to numbers", ctx.recipes.to_dtype(cast))])
            return
        if loss.lenient:
            return  # Keras casts numeric labels to what the loss needs
        as_indices = loss.wants_class_indices and (ctx.output is None or labels.shape == index_target_shape(ctx))
        # PyTorch takes uint8 class indices only as a 1-D target; masks from PNG files are uint8 and fail
        accepted = ("int64", "uint8") if len(labels.shape) == 1 else ("int64",)
        if as_indices and dtype not in accepted:
            yield self.finding(f"`{loss.name}` class indices are {dtype}; it expects int64 labels",
                               fixes=[Fix("Cast the labels", ctx.recipes.to_dtype("int64"))])
        elif not loss.wants_class_indices and (is_int(dtype) or dtype == "bool") and loss.name not in PROMOTING:
            yield self.finding(f"`{loss.name}` labels are {dtype}; it expects floating-point targets like the output",
                               fixes=[Fix("Cast the labels", ctx.recipes.to_dtype("float32"))])
