from shapecheck.edits import Edit, Recipe
from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref


class UnusedModule(Rule):
    code = "SC207"
    name = "unused-module"
    category = "output_vs_loss"
    severity = "warning"
    summary = "A layer with weights never runs in forward; an error when a namesake deeper in the model runs instead"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        trace = ctx.trace
        if trace.failure is not None:  # layers after the failure did not get the chance to run
            return
        active = _active_names(trace)
        for layer in trace.layers:
            parent = layer.name.rpartition(".")[0]
            if not layer.name or layer.name in active or parent not in active or not _has_weights(trace, layer.name):
                continue
            message = f"{ref(ctx, layer.name)} ({layer.type}) has weights but never runs in `{trace.model_class}.forward`"
            namesake = _namesake_that_ran(trace, layer.name)
            if namesake is None:
                yield self.finding(message, layer, [Fix("Call it in forward, or delete it")])
                continue
            # a replaced head on a wrapper: the model's output still comes from the old layer
            message += f"; the output comes through `{namesake}` instead"
            fixes = [Fix("Assign the new layer where forward uses it",
                         Recipe(f"{ctx.recipes.path(namesake)} = {ctx.recipes.path(layer.name)}",
                                (Edit("layer", "assign", (layer.name,), namesake),)))]
            yield self.finding(message, layer, fixes, severity="error")


def _active_names(trace) -> set[str]:
    """Layers that ran or whose weights were used, and all their ancestors (a ModuleList is never called itself)."""
    active: set[str] = set()
    for layer in trace.layers:
        if layer.calls or layer.weights_used or layer.eval_only:
            parts = layer.name.split(".") if layer.name else []
            active.update(".".join(parts[:i]) for i in range(len(parts) + 1))
    return active


def _has_weights(trace, name: str) -> bool:
    prefix = name + "."
    return any(layer.params for layer in trace.layers if layer.name == name or layer.name.startswith(prefix))


def _namesake_that_ran(trace, name: str) -> str | None:
    """A layer with the same attribute name deeper in the model that did run (`model.fc` for an unused `fc`)."""
    leaf = name.rpartition(".")[2]
    return next((layer.name for layer in trace.layers
                 if layer.calls and layer.name != name and layer.name.rpartition(".")[2] == leaf), None)
