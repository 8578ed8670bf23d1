from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt


class SeveralOutputsToLoss(Rule):
    code = "SC122"
    name = "several-outputs-to-loss"
    category = "output_vs_loss"
    summary = "The model returns a tuple of tensors (auxiliary outputs in train mode); the loss takes one tensor"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        trace = ctx.trace
        if not trace.output_container or len(trace.outputs) < 2 or ctx.loss is None:
            return
        if ctx.labels is not None and ctx.labels.per_output:
            return   # each output was paired with its own loss and labels: none gets the tuple
        parts = ", ".join(f"{path.lstrip('.')} {fmt(meta.shape)}" for path, meta in trace.outputs.items())
        message = (f"in training mode the model returns {trace.output_container}({parts}): `{ctx.loss.name}` takes "
                   "one tensor, and `criterion(model(x), labels)` fails on the tuple")
        main, *others = list(trace.outputs)
        chosen = trace.output_path or main
        pick = f"out{chosen}" if chosen.startswith("[") else f"out.{chosen.lstrip('.')}"
        fixes = [Fix("Compute the loss on the tensor it is for", f"loss = criterion({pick}, labels)")]
        aux = next((path for path in others if "aux" in path.lower()), None)
        if aux is not None:
            fixes.append(Fix("and add the auxiliary head's loss, weighted, as the model's paper does",
                             f"loss = criterion({pick}, labels) + 0.4 * criterion(out.{aux.lstrip('.')}, labels)", joins=True))
            fixes.append(Fix("Or build the model without the auxiliary head (torchvision: `aux_logits=False`)"))
        yield self.finding(message, None, fixes)
