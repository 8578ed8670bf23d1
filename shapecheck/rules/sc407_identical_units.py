from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref


class IdenticalUnits(Rule):
    code = "SC407"
    name = "identical-units"
    category = "internal_layer"
    summary = "Every unit of a layer holds the same weights, at initialisation and after training steps (measured): " \
              "the layer computes one feature"
    subject = "signal"
    supersedes = frozenset({"SC401", "SC402", "SC405"})   # what a constant initialisation makes of the signal

    def check(self, ctx):
        audit = ctx.trace.audit
        if audit is None or audit.symmetric is None:
            return
        found = audit.symmetric
        shown = ", ".join(ref(ctx, name) if name else f"`{ctx.trace.model_class}`" for name in found.layers[:4])
        count = f"the {found.units} units" if len(found.layers) == 1 else "the units"
        message = (f"{count} of {shown} hold identical weights at initialisation and still do after "
                   f"{found.steps} training steps: every unit gets the same gradient, so each layer computes one "
                   "feature however wide it is (its weights were initialised to one constant)")
        yield self.finding(message, ctx.trace.layer(found.layers[0]), [Fix(
            "Initialise weights randomly: keep the layer's default initialisation, or use `nn.init.kaiming_uniform_` "
            "/ `nn.init.xavier_uniform_`; a constant (zeros) suits biases and the last layer only")])
