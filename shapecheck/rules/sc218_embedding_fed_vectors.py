from shapecheck.findings import Fix
from shapecheck.rules import Rule
from shapecheck.rules.common import ref
from shapecheck.rules.predicates import embedding_fed_by_layer
from shapecheck.shapes import fmt, is_float


class EmbeddingFedVectors(Rule):
    code = "SC218"
    name = "embedding-fed-vectors"
    category = "internal_layer"
    summary = "An Embedding receives another layer's float vectors instead of integer ids (layers chained by mistake)"
    explains = frozenset({"forward"})

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
