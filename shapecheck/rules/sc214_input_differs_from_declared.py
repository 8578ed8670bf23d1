from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import fits_declared
from shapecheck.shapes import fmt


class InputDiffersFromDeclared(Rule):
    code = "SC214"
    name = "input-differs-from-declared"
    category = "input_shape"
    summary = "The input batch does not have the shape the model declares for its input"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        declared = ctx.trace.declared_inputs
        if not declared:
            return
        order = _input_order(ctx.trace.inputs, declared)
        if order is not None:
            yield self._reordered(ctx, order)
            return
        for index, (given, wanted) in enumerate(zip(ctx.trace.inputs, declared)):
            if fits_declared(given.shape[1:], wanted.shape[1:]):
                continue
            want = "(None, " + ", ".join("None" if d == -1 else str(d) for d in wanted.shape[1:]) + ")"
            message = f"the model declares input {index} as {want}, but the input is {fmt(given.shape)}"
            yield self.finding(message, None, _fixes(ctx, given.shape, wanted.shape))


    def _reordered(self, ctx, order: list[int]):
        names = ctx.trace.input_names or [f"input_{i}" for i in range(len(order))]
        moved = [f"input {i} (`{names[i]}`, declared {fmt(ctx.trace.declared_inputs[i].shape)}) gets the "
                 f"{fmt(ctx.trace.inputs[i].shape)} array meant for input {j}" for i, j in enumerate(order) if i != j]
        message = f"the inputs arrive in another order than the model declares them: {'; '.join(moved)}"
        arrays = ", ".join(f'"{name}": x_{name}' for name in names)
        return self.finding(message, None, [Fix("Pass them in the model's order, or by name",
                                                f"model.fit({{{arrays}}}, y)")])


def _input_order(given: list, declared: list) -> list[int] | None:
    """For several inputs that each fit another declared input, and not their own: which array each one got."""
    if len(given) < 2 or len(given) != len(declared):
        return None
    if all(fits_declared(g.shape[1:], w.shape[1:]) for g, w in zip(given, declared)):
        return None
    # an input that fits its own slot keeps it; the others take the first free slot they fit
    slots: list[int | None] = [i if fits_declared(g.shape[1:], declared[i].shape[1:]) else None
                               for i, g in enumerate(given)]
    free = [j for j in range(len(declared)) if j not in slots]
    order = []
    for i, g in enumerate(given):
        slot = slots[i] if slots[i] is not None else \
            next((j for j in free if fits_declared(g.shape[1:], declared[j].shape[1:])), None)
        if slot is None:
            return None
        if slots[i] is None:
            free.remove(slot)
        order.append(slot)
    return order


def _fixes(ctx, given: tuple, wanted: tuple) -> list[Fix]:
    differ = [i for i, (g, w) in enumerate(zip(given, wanted)) if w not in (-1, g)] if len(given) == len(wanted) else []
    if len(differ) == 1 and given[differ[0]] == 1 and wanted[differ[0]] in (3, 4):
        return [Fix(f"Grayscale images: repeat the channel {wanted[differ[0]]} times",
                    ctx.recipes.repeat_channels(wanted[differ[0]]))]
    if given[1:] + (1,) == wanted[1:]:
        return [Fix("Add the channel axis the model expects", "x = x[..., None]")]
    if len(given) + 1 == len(wanted) and given[1:] == wanted[2:] and wanted[1] > 1:   # frames for a clip model
        sizes = ", ".join(map(str, wanted[1:]))
        return [Fix(f"The model takes clips of {wanted[1]} frames: group the frames along a time axis",
                    f"x = x.reshape(-1, {sizes})")]
    if len(given) + 1 == len(wanted) and given[1:] == wanted[1:-1] and wanted[-1] > 1:
        return [Fix(f"Grayscale images without a channel axis: repeat them to {wanted[-1]} channels",
                    ctx.recipes.gray_to_rgb(wanted[-1]))]
    if len(given) == 3 and given[1:] == wanted[:0:-1]:
        return [Fix("The time and feature axes are swapped", ctx.recipes.swap_axes(1, 2))]
    if len(given) == len(wanted) and given[1] == wanted[-1] and given[2:] == wanted[1:-1]:
        return [Fix("The input is channels-first: move channels last", ctx.recipes.channels_last(len(given)))]
    size = "x".join(map(str, wanted[1:]))
    pairs = [(g, w) for g, w in zip(given[1:], wanted[1:]) if w != -1] if len(given) == len(wanted) else []
    how = ("Resize or crop" if pairs and all(g >= w for g, w in pairs) else
           "Resize or pad" if pairs and all(g <= w for g, w in pairs) else "Resize")
    return [Fix(f"{how} the inputs to {size}, the size the model was built for")]
