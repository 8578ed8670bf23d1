from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.shapes import fmt


class LabelsBatchMismatch(Rule):
    code = "SC303"
    name = "labels-batch-mismatch"
    category = "batch_dim"
    summary = "The labels hold a different number of samples than the batch"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        trace, labels = ctx.trace, ctx.labels
        if labels is None or not labels.shape or trace.output is None:
            return
        if trace.output.shape[:1] != (trace.batch,) or labels.shape[0] == trace.batch:
            return  # compared with the batch the output keeps (an output that lost it is another bug)
        if trace.batch in labels.shape[1:] and all(d in (1, trace.batch) for d in labels.shape):
            return  # the samples are all there, on another axis ([1, N]): a layout, not another batch
        message = f"labels {fmt(labels.shape)} hold {labels.shape[0]} samples, the batch and output have {trace.batch}"
        fixes = [Fix("Take the labels from the same batch as the inputs (one row per sample)")]
        if labels.shape[0] % trace.batch == 0 and len(labels.shape) == 1:
            per = labels.shape[0] // trace.batch
            fixes.append(Fix(f"If each sample's {per} labels were flattened, keep them per sample",
                             ctx.recipes.labels_steps(("view", (trace.batch, per)))))
        yield self.finding(message, None, fixes)
