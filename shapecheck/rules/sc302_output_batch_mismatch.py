from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.rules.predicates import flattened_on_purpose, folding_op, next_linear
from shapecheck.shapes import fmt


class OutputBatchMismatch(Rule):
    code = "SC302"
    name = "output-batch-mismatch"
    category = "batch_dim"
    summary = "The output's batch size differs from the input's (samples are joined, dropped or folded)"
    subject = "loss"
    aspect = "shape"
    supersedes = frozenset({"SC100"})

    def check(self, ctx):
        trace = ctx.trace
        if trace.output is None or trace.output.shape[:1] in ((trace.batch,), (-1,)) or flattened_on_purpose(ctx):
            return
        op = folding_op(trace, trace.batch)
        message = f"the model returns {fmt(trace.output.shape)} for an input batch of {trace.batch}"
        fixes = []
        if op is not None:
            message += f"; `{op.spelling}` turns {fmt(op.inputs[0].shape)} into {fmt(op.outputs[0].shape)}"
            if op.name in ("cat", "stack"):
                fixes.append(Fix("Join per-sample features along axis 1, not the batch axis 0",
                                 ctx.recipes.join_features(op.spelling)))
                consumer = next_linear(ctx, op)
                joined = sum(t.shape[1] for t in op.inputs if len(t.shape) >= 2)
                if consumer is not None and op.name == "cat" and consumer.config.get("in_features") != joined:
                    fixes.append(Fix(f"and size {ref(ctx, consumer.name)} for the {joined} joined features",
                                     ctx.recipes.replace_linear_input(consumer, joined), joins=True))
        if not fixes:
            fixes.append(Fix("Keep axis 0 the batch axis from input to output"))
        yield self.finding(message, op.layer if op is not None and op.layer else None, fixes,
                           location=op.source if op is not None else None)
