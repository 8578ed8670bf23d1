from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import index_target_shape
from shapecheck.shapes import fmt, is_float, is_int


class LabelDtype(Rule):
    code = "SC107"
    name = "label-dtype"
    category = "dtype"
    summary = "Labels have a dtype the loss cannot take (float class indices, integer or string targets)"

    def check(self, ctx):
        labels, loss = ctx.labels, ctx.loss
        if labels is None or loss is None:
            return
        dtype = labels.dtype
        if dtype == "str":
            yield self.finding(f"`{loss.name}` labels {fmt(labels.shape)} are strings; losses take numbers",
                               fixes=[Fix("Map each label name to a class index first",
                                          "classes = sorted(set(names)); labels = [classes.index(n) for n in names]")])
            return
        as_indices = loss.wants_class_indices and (ctx.output is None or labels.shape == index_target_shape(ctx))
        if as_indices and dtype not in ("int64", "uint8"):
            integral = labels.stats is None or labels.stats.integral
            if is_float(dtype) and not integral:
                return  # fractional values: a value rule explains what they are
            yield self.finding(f"`{loss.name}` class indices are {dtype}; it expects int64 labels",
                               fixes=[Fix("Cast the labels", ctx.recipes.to_dtype("int64"))])
        elif not loss.wants_class_indices and (is_int(dtype) or dtype == "bool"):
            yield self.finding(f"`{loss.name}` labels are {dtype}; it expects floating-point targets like the output",
                               fixes=[Fix("Cast the labels", ctx.recipes.to_dtype("float32"))])
