from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import failed_layer, from_phrase, ref
from shapecheck.shapes import fmt


class RecurrentInputSizeMismatch(Rule):
    code = "SC209"
    name = "recurrent-input-size-mismatch"
    category = "internal_layer"
    summary = "A recurrent layer's input_size differs from the features per step that reach it"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC901"})

    def check(self, ctx):
        layer = failed_layer(ctx, "rnn", needs_weight=False)
        if layer is None:
            return
        x = layer.inputs[0].shape
        expected = layer.config.get("input_size")
        if expected is None or x[-1] == expected:
            return
        message = (f"{ref(ctx, layer.name)} ({layer.type}) expects input_size={expected} features per step but "
                   f"receives {fmt(x)}{from_phrase(ctx, layer)}")
        resize = Fix(f"Build it for {x[-1]} features", ctx.recipes.recurrent_input_size(layer, x[-1]))
        if len(x) == 3 and x[1] == expected:
            # a Conv1d-style [N, C, L] map: the features sit on axis 1
            move = ctx.recipes.swap_axes(1, 2) if layer.config.get("batch_first", False) else ctx.recipes.time_major(3)
            fixes = [Fix("The features are on axis 1: move them last", move), resize]
        else:
            fixes = [resize]
        yield self.finding(message, layer, fixes)
