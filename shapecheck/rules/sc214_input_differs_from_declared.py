from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt


class InputDiffersFromDeclared(Rule):
    code = "SC214"
    name = "input-differs-from-declared"
    category = "input_shape"
    summary = "The input batch does not have the shape the model declares for its input"
    explains_failure = True

    def check(self, ctx):
        declared = ctx.trace.declared_inputs
        if not declared:
            return
        for index, (given, wanted) in enumerate(zip(ctx.trace.inputs, declared)):
            if _fits(given.shape[1:], wanted.shape[1:]):
                continue
            want = "(None, " + ", ".join("None" if d == -1 else str(d) for d in wanted.shape[1:]) + ")"
            message = f"the model declares input {index} as {want}, but the input is {fmt(given.shape)}"
            yield self.finding(message, None, _fixes(ctx, given.shape, wanted.shape))


def _fits(given: tuple, wanted: tuple) -> bool:
    """Same rank, and every size the model fixes (not None) is the size given."""
    return len(given) == len(wanted) and all(w in (-1, g) for g, w in zip(given, wanted))


def _fixes(ctx, given: tuple, wanted: tuple) -> list[Fix]:
    differ = [i for i, (g, w) in enumerate(zip(given, wanted)) if w not in (-1, g)] if len(given) == len(wanted) else []
    if len(differ) == 1 and given[differ[0]] == 1 and wanted[differ[0]] in (3, 4):
        return [Fix(f"Grayscale images: repeat the channel {wanted[differ[0]]} times",
                    ctx.recipes.repeat_channels(wanted[differ[0]]))]
    if given[1:] + (1,) == wanted[1:]:
        return [Fix("Add the channel axis the model expects", "x = x[..., None]")]
    if len(given) + 1 == len(wanted) and given[1:] == wanted[1:-1] and wanted[-1] > 1:
        return [Fix(f"Grayscale images without a channel axis: repeat them to {wanted[-1]} channels",
                    ctx.recipes.gray_to_rgb(wanted[-1]))]
    if len(given) == 3 and given[1:] == wanted[:0:-1]:
        return [Fix("The time and feature axes are swapped", ctx.recipes.swap_axes(1, 2))]
    if len(given) == len(wanted) and given[1] == wanted[-1] and given[2:] == wanted[1:-1]:
        return [Fix("The input is channels-first: move channels last", ctx.recipes.channels_last(len(given)))]
    size = "x".join(map(str, wanted[1:]))
    return [Fix(f"Resize or pad the inputs to {size}, the size the model was built for")]
