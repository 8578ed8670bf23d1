import math
import re

from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import op_site, ref, requested_sizes
from shapecheck.rules.predicates import (
    RESHAPES,
    exported_batch_constant,
    folding_op,
)
from shapecheck.shapes import fmt


class HardCodedBatchSize(Rule):
    code = "SC306"
    name = "hard-coded-batch-size"
    category = "batch_dim"
    summary = "A reshape writes the batch size in: any other batch (the last, smaller one of an epoch) breaks"
    subject = "loss"
    aspect = "shape"
    explains_failure = True
    supersedes = frozenset({"SC100", "SC211", "SC302", "SC901"})

    def check(self, ctx):
        found = (self._in_failure(ctx) or self._in_exported_graph(ctx) or self._recurrent_state(ctx)
                 or self._across_batches(ctx))
        if found is not None:
            yield found

    def _in_failure(self, ctx):
        """The forward failed in a reshape whose first size is a batch other than the one given."""
        failure, batch = ctx.trace.failure, ctx.trace.batch
        if failure is None or not failure.inputs:
            return None
        per_sample = math.prod(failure.inputs[0].shape[1:])
        hard_coded = requested_batch(failure, per_sample)
        if hard_coded is None or hard_coded == batch:
            return None
        layer = ctx.trace.layer(failure.layer)
        where = (f"`{ctx.recipes.display(failure.layer)}` ({layer.type})" if layer is not None and failure.op is None
                 else f"`{failure.op_spelling}` in `{ctx.recipes.display(failure.layer) if failure.layer else ctx.trace.model_class}.forward`")
        message = (f"{where} reshapes {fmt(failure.inputs[0].shape)} to a batch of {hard_coded}: the batch size "
                   f"{hard_coded} is written into the shape, and this batch has {batch} samples")
        sample = _requested_sample_shape(failure) or failure.inputs[0].shape[1:]
        fixes = [Fix("Reshape per sample and let the batch follow", ctx.recipes.reshape_per_sample(sample))]
        return self.finding(message, layer or failure.layer, fixes, location=failure.source)

    def _in_exported_graph(self, ctx):
        """A static export records `x.size(0)` as the constant it had, 1: patching the input's batch dim to be
        symbolic afterwards leaves that constant in every Reshape."""
        trace = ctx.trace
        if trace.output is None or trace.output.shape[:1] in ((trace.batch,), (-1,)):
            return None
        op = folding_op(trace, trace.batch)
        if op is None or op.name not in RESHAPES or not exported_batch_constant(trace, op):
            return None
        message = (f"{op_site(ctx, op)[0]} reshapes {fmt(op.inputs[0].shape)} to {fmt(op.outputs[0].shape)}: its "
                   f"target shape is a constant holding the batch of 1 the graph was exported with, so a batch of "
                   f"{trace.batch} does not fit")
        name = trace.input_names[0] if trace.input_names else "input"
        fixes = [Fix("Re-export with a dynamic batch axis, so reshapes follow the batch",
                     ctx.recipes.dynamic_batch_export(name))]
        return self.finding(message, op.layer or None, fixes, location=op.source)

    def _recurrent_state(self, ctx):
        """An exported LSTM/GRU whose initial state was built for the export's batch: [directions, 1, hidden]
        next to an input of another batch. Shape inference does not compare them; the runtime refuses."""
        for layer in ctx.trace.layers:
            if layer.kind != "rnn" or ctx.trace.framework != "onnx" or len(layer.inputs) < 2:
                continue
            x = layer.inputs[0].shape
            axis = 0 if layer.config.get("batch_first") else 1   # ONNX layout 1 puts the batch first in the states too
            batch = x[axis] if len(x) == 3 else None
            state = next((t.shape for t in layer.inputs[1:] if len(t.shape) == 3 and t.shape[axis] not in (batch, -1)),
                         None)
            if batch is None or state is None:
                continue
            message = (f"{ref(ctx, layer.name)} ({layer.type}) starts from a state {fmt(state)} built for a batch of "
                       f"{state[axis]}, but its input {fmt(x)} holds {batch} sequences: the state's batch size was "
                       "recorded as a constant at export")
            name = ctx.trace.input_names[0] if ctx.trace.input_names else "input"
            fixes = [Fix("Build the initial state from the input's batch size in forward "
                         "(`h0.expand(-1, x.size(1), -1)`), then re-export with a dynamic batch axis",
                         ctx.recipes.dynamic_batch_export(name))]
            return self.finding(message, layer, fixes)
        return None

    def _across_batches(self, ctx):
        """Fine at the batch given, broken at one more sample: the size given is the one written in."""
        trace, alternate = ctx.trace, ctx.trace.alternate
        if trace.failure is not None or alternate is None or trace.output.shape[:1] != (trace.batch,):
            return None   # wrong at the size given already: that size is not the one written in
        op = _hard_coded(trace, alternate)
        if op is None:
            return None
        result = (f"fails: {alternate.failure.message}" if alternate.failure
                  else f"returns {fmt(alternate.output.shape)}")
        message = (f"{op_site(ctx, op)[0]} gives {fmt(op.outputs[0].shape)} at batch {trace.batch}, but at batch "
                   f"{alternate.batch} the model {result}: the batch size {trace.batch} is written into the shape")
        return self.finding(message, op.layer or None, _fixes(ctx), location=op.source)


def _requested_sample_shape(failure) -> tuple[int, ...] | None:
    requested = requested_sizes(failure)
    return tuple(requested[1:]) if len(requested) >= 2 else None


def _hard_coded(trace, alternate):
    """The op whose output tracks the batch at one batch size but not at the other."""
    failure = alternate.failure
    if failure is not None and failure.op_index is not None and failure.op_index < len(trace.ops):
        op = trace.ops[failure.op_index]
        return op if op.name == failure.op and op.name in RESHAPES else None
    if alternate.output is not None and alternate.output.shape[:1] != (alternate.batch,):
        folded = folding_op(alternate, alternate.batch)
        return trace.ops[folded.index] if folded is not None and folded.index < len(trace.ops) else None
    return None


def _fixes(ctx) -> list[Fix]:
    return [Fix("Reshape per sample and let the batch follow", ctx.recipes.flatten_per_sample())]


# TensorFlow's wording, from a Keras Lambda or a tf.reshape
_TF_RESHAPE = re.compile(r"tensor with (\d+) values, but the requested shape has (\d+)")


def requested_batch(failure, per_sample: int) -> int | None:
    """The batch a failed reshape asked for: its first size when the rest is one sample's worth of values."""
    requested = requested_sizes(failure)
    if len(requested) >= 2 and requested[0] > 0 and all(d > 0 for d in requested[1:]) and \
            math.prod(requested[1:]) == per_sample:
        return requested[0]
    match = _TF_RESHAPE.search(failure.message or "")
    if match and per_sample and int(match.group(2)) % per_sample == 0:
        return int(match.group(2)) // per_sample
    return None
