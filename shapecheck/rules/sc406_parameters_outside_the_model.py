from shapecheck.findings import Fix
from shapecheck.rules import Rule


class ParametersOutsideTheModel(Rule):
    code = "SC406"
    name = "parameters-outside-the-model"
    category = "internal_layer"
    summary = "Forward trains weights that `model.parameters()` does not list (measured): no optimiser updates them"
    subject = "signal"

    def check(self, ctx):
        audit = ctx.trace.audit
        if audit is None or audit.unregistered is None:
            return
        found, model = audit.unregistered, ctx.trace.model_class
        places = [f"`{path}`" for path in found.held[:4]] + (["layers created in `forward`"] if found.created else [])
        message = (f"the loss gives a gradient to {found.values:,} values that `{model}.parameters()` does not list "
                   f"({', '.join(places)}): an optimiser built from the model never updates them, so they keep "
                   "their random initialisation")
        yield self.finding(message, found.layer or None, _fixes(found), location=found.source)


def _fixes(found) -> list[Fix]:
    fixes = []
    if found.held:
        attribute = found.held[0].partition("[")[0]
        fixes.append(Fix("Register the layers: hold them in `nn.ModuleList` (or `nn.ModuleDict` for a dict)",
                         f"self.{attribute.rpartition('.')[2]} = nn.ModuleList(...)"))
    if found.created:
        fixes.append(Fix("Create each layer once in `__init__` (`self.proj = nn.Linear(...)`) and call it in "
                         "`forward`: a layer built in `forward` gets new random weights at every call"))
    return fixes
