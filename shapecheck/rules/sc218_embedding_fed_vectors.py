from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import fed_by_model_input, ref
from shapecheck.shapes import fmt, is_float


class EmbeddingFedVectors(Rule):
    code = "SC218"
    name = "embedding-fed-vectors"
    category = "internal_layer"
    summary = "An Embedding receives another layer's float vectors instead of integer ids (layers chained by mistake)"
    subject = "forward"
    explains_failure = True
    supersedes = frozenset({"SC206", "SC901"})

    def check(self, ctx):
        failure = ctx.trace.failure
        layer = ctx.trace.layer(failure.layer) if failure else None
        if layer is None or layer.kind != "embedding" or not layer.inputs or not is_float(layer.inputs[0].dtype):
            return
        producer = embedding_fed_by_layer(ctx, layer)
        if producer is None:
            return
        message = (f"{ref(ctx, layer.name)} ({layer.type}) looks up integer ids but receives the {layer.inputs[0].dtype} "
                   f"vectors {fmt(layer.inputs[0].shape)} of {ref(ctx, producer.name)} ({producer.type}): the layers "
                   "are chained where each should read the ids")
        fixes = [Fix(f"Give {ref(ctx, layer.name)} the integer ids it should look up (e.g. its column of the input), "
                     "not another layer's output",
                     ctx.recipes.embed_columns())]
        yield self.finding(message, layer, fixes)


def embedding_fed_by_layer(ctx, layer):
    """The layer whose float output an Embedding receives instead of ids, if one does."""
    if fed_by_model_input(ctx, layer):
        return None
    return ctx.trace.upstream_layer(layer.input_producers[0] if layer.input_producers else None, layer.name)
