"""Turn verified recipes into edits of the user's own source (`--fix-diff`, `--fix`), with libcst so formatting and
comments stay as they were.

Only a line the user wrote is changed, the one that decides (`shapecheck/decides.py`): the constructor call of the
offending layer (`nn.Linear(512, 1000)` -> `nn.Linear(512, 1)`), or the call or constant that chose a size passed
down to it (`TagNet(num_tags=10)`); the call of an op in `forward` (`F.softmax(x, dim=1)` -> `x`); for a layer a
library built, the library's own argument (`num_classes=`, `num_labels=` on the config, `classes=`) or a
replacement statement after the user's line that called the library (`model.fc = nn.Linear(...)`). Library code
(site-packages, torchvision, keras.applications) is never touched.

Each fix has an applicability (`applicability`): `--fix` applies the safe ones, `--unsafe-fixes` the rest.
"""

from __future__ import annotations

import ast
import difflib
import itertools
import json
import os
import re
import subprocess
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from shapecheck import decides
from shapecheck.edits import Edit
from shapecheck.engine import Result
from shapecheck.errors import ShapecheckError
from shapecheck.findings import Applicability
from shapecheck.trace import Location, Trace

MODEL = "model"   # the variable recipes name the model by (`Recipes.model_var`)

# (positional index, keyword) of the size a `resize` edit changes, per layer class
_SIZE_ARGUMENTS = {
    "in": {"Linear": (0, "in_features"), "Conv": (0, "in_channels"), "ConvTranspose": (0, "in_channels"),
           "BatchNorm": (0, "num_features"), "InstanceNorm": (0, "num_features"), "LayerNorm": (0, "normalized_shape"),
           "GroupNorm": (1, "num_channels"), "LSTM": (0, "input_size"), "GRU": (0, "input_size"),
           "RNN": (0, "input_size"), "Embedding": (0, "num_embeddings")},
    "out": {"Linear": (1, "out_features"), "Conv": (1, "out_channels"), "ConvTranspose": (1, "out_channels"),
            "Embedding": (1, "embedding_dim"), "Dense": (0, "units"), "Conv1D": (0, "filters"),
            "Conv2D": (0, "filters"), "Conv3D": (0, "filters")},
}


@dataclass
class Change:
    """One change to one line of a file: what `_Rewriter` does at that line."""

    line: int
    kind: str                   # "argument", "keyword", "assign", "unwrap", "rename", "method", "replace_call",
                                # "insert_after"
    callee: str = ""            # the last name of the call to change (`Linear`, `softmax`)
    index: int | None = None
    keyword: str = ""
    value: object = None
    finding_key: tuple = ()     # (target, rule, layer) of the finding it fixes, to count findings fixed
    ordinal: int | None = None  # which of the line's calls of `callee` (left to right); None: the first that fits
    replaces: str = ""          # the expression a new number replaces (`32 * 8 * 8`): makes the fix unsafe

    @property
    def key(self) -> tuple:
        """Two findings fixed by the same change (a head both SC101 and SC108 name) change the line once."""
        return self.line, self.kind, self.callee, self.keyword, repr(self.value), self.ordinal


@dataclass
class FilePatch:
    path: Path
    shown: str                  # the path as the report shows it
    changes: list[Change] = field(default_factory=list)
    before: str = ""
    after: str = ""

    def replacements(self) -> list[dict]:
        """SARIF replacements: whole lines deleted and the lines inserted instead (1-based)."""
        before, after = self.before.splitlines(True), self.after.splitlines(True)
        found = []
        for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, before, after).get_opcodes():
            if tag != "equal":
                region = {"startLine": i1 + 1, "startColumn": 1, "endLine": i2 + 1, "endColumn": 1}
                found.append({"deletedRegion": region, "insertedContent": {"text": "".join(after[j1:j2])}})
        return found

    @property
    def diff(self) -> str:
        return "".join(difflib.unified_diff(self.before.splitlines(True), self.after.splitlines(True),
                                            f"a/{self.shown}", f"b/{self.shown}"))


def plan(results: list[Result], allowed=("safe",)) -> list[FilePatch]:
    """The source patches of every finding's first verified recipe, of an applicability in `allowed`, that maps
    onto the user's code."""
    return _patches([(result, finding) for result in results for finding in result.findings], allowed)


def for_finding(result: Result, finding, allowed=("safe", "unsafe")) -> list[FilePatch]:
    """The source patch of one finding's first verified recipe (SARIF `fixes`)."""
    return _patches([(result, finding)], allowed)


def _patches(findings, allowed) -> list[FilePatch]:
    patches: dict[Path, FilePatch] = {}
    for result, finding in findings:
        chain = applied_chain(result, finding, allowed)
        for location, change in _changes(result.trace, chain) if chain else ():
            change.finding_key = (result.target, finding.rule, finding.layer)
            path = Path(location.file or location.path).resolve()
            patch = patches.setdefault(path, FilePatch(path, location.path))
            if all(c.key != change.key for c in patch.changes):
                patch.changes.append(change)
    for patch in patches.values():
        patch.before = patch.path.read_text(encoding="utf-8")
        patch.after = _rewrite(patch.before, patch.changes)
    return [p for p in patches.values() if p.after != p.before]


def _chain(fixes, first) -> list:
    """`first` and the fixes that join it; [] when `first` itself joins another."""
    if first.joins:
        return []
    start = fixes.index(first)
    return [first] + list(itertools.takewhile(lambda fix: fix.joins, fixes[start + 1:]))


class NoPlace(Exception):
    """A recipe's model edit has no place in the user's own code; the message says why, for the user."""


def _changes(trace: Trace, chain: list) -> list[tuple[Location, Change]] | None:
    """The source changes for a recipe's model edits, or None when one of them has no place in the user's code.
    Its label and loss edits live in the training code shapecheck does not see: `plan` lists them as notes."""
    try:
        return placed_changes(trace, chain)
    except NoPlace:
        return None


def placed_changes(trace: Trace, chain: list) -> list[tuple[Location, Change]]:
    """The source changes of a recipe chain's model edits; raises `NoPlace` when one has none (or it has none)."""
    found = [change for fix in chain for edit in fix.edits if edit.on not in ("labels", "loss")
             for change in _change(trace, edit, fix.recipe.insert)]
    if not found:
        raise NoPlace("it changes nothing in the model's source")
    return found


def applied_chain(result: Result, finding, allowed=("safe",)) -> list:
    """The fixes whose recipe the patch of `finding` applies: the first verified one, of an applicability in
    `allowed`, that maps onto source."""
    return next((chain for fix in finding.fixes if fix.verified and fix.applicability in allowed
                 and result.trace is not None for chain in [_chain(finding.fixes, fix)]
                 if chain and _changes(result.trace, chain)), [])


def outside_source(results: list[Result], allowed=("safe",)) -> list[str]:
    """The label and loss steps of the patched recipes, which the user applies in their training code."""
    return [f"{finding.rule}: {fix}" for result in results for finding in result.findings
            for fix in applied_chain(result, finding, allowed) if in_training_code(fix)]


def in_training_code(fix) -> bool:
    """A label or loss step: it lives in code shapecheck does not see."""
    return bool(fix.edits) and all(edit.on in ("labels", "loss") for edit in fix.edits)


def _changes_size(trace: Trace, edit: Edit) -> bool:
    """A resize to another size than the layer has (a head "resized" to its own size only carries an activation)."""
    (key, size), = edit.args
    layer = trace.layer(edit.layer)
    return layer is None or layer.config.get(f"{key}_features", layer.config.get(f"{key}_channels")) != size


def _keeps_meaning(edit: Edit, resized: set[str]) -> bool:
    """A model edit that keeps what the user meant: a size made to agree with what the layer receives or the labels
    hold, and the activation of a Keras head that is resized with it (the new head's, for its new size)."""
    if edit.op == "resize":
        return True
    setting = dict(edit.args) if edit.op == "set" else {}
    return set(setting) == {"activation"} and edit.layer in resized


# why advice (a fix with no edit) is display-only, by the finding's category: where the change it asks for lives
_ADVICE = {
    "input_shape": "the inputs change where your data is loaded or prepared, which shapecheck does not edit",
    "labels_vs_loss": "the labels change where your dataset makes them, which shapecheck does not edit",
    "label_range": "the label values change where your dataset makes them, which shapecheck does not edit",
    "dtype": "the data's types change where your dataset makes them, which shapecheck does not edit",
    "batch_dim": "a choice about how batches are formed or the model is exported, left to you",
    "internal_layer": "a change to the model's design with more than one right answer, left to you",
    "output_vs_loss": "a change to the model's design or its loss with more than one right answer, left to you",
    "activation_vs_loss": "a change to the model's design or its loss with more than one right answer, left to you",
}


def applicability(trace: Trace | None, finding, fix) -> tuple[Applicability, str, str]:
    """(applicability, reason, where) of one of `finding`'s fixes (`findings.Applicability`); `where` describes
    the changes made away from the layer's own line (the call that passed its size down), "" when none are."""
    fixes = finding.fixes
    if fix.applicability == "display" and fix.reason:   # the rule knows why its recipe is not for --fix
        return "display", fix.reason, ""
    if not fix.edits:
        return "display", f"advice: {_ADVICE.get(finding.category, 'no code edit to apply')}", ""
    if trace is not None and trace.framework == "onnx":
        return "display", "an exported graph: change the source model, then export it again", ""
    if not fix.certain:
        return "display", "the class count is only known to be at least this, from one batch of labels: set your " \
            "dataset's count", ""
    if in_training_code(fix) or all(edit.on in ("labels", "loss", "input") for edit in fix.edits):
        return "display", "the change goes in your training code (the labels, the loss or the input it feeds)", ""
    chain = _chain(fixes, fix)
    if trace is None or not chain:
        return "display", "it applies together with the fix before it", ""
    try:
        placed = placed_changes(trace, chain)
        if fix.verified:
            _rewrites_something(placed)
    except NoPlace as why:
        return "display", str(why), ""
    where = "; ".join(_described(location, change) for location, change in placed
                      if _passed_down(trace, chain, location, change))
    replaced = [c.replaces for _, c in placed if c.replaces]
    model_edits = [edit for one in chain for edit in one.edits if edit.on not in ("labels", "loss")]
    resized = {edit.layer for edit in model_edits if edit.op == "resize" and _changes_size(trace, edit)}
    if not all(_keeps_meaning(edit, resized) for edit in model_edits) or not all(one.certain for one in chain):
        return "unsafe", "it changes what the model computes", where
    if replaced:
        return "unsafe", f"a number replaces the expression `{replaced[0]}`, which may stand for other inputs", where
    return "safe", "", where


def _rewrites_something(placed: list[tuple[Location, Change]]) -> None:
    """Raise `NoPlace` when the changes leave a file as it was: the call they aim at is not written as expected
    (an activation the layer receives from a variable), so `--fix` would promise an edit it never makes."""
    by_file = defaultdict(list)
    for location, change in placed:
        by_file[location.file or location.path].append(change)
    for path, changes in by_file.items():
        try:
            before = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise NoPlace(f"cannot read {path}: {exc.strerror}") from None
        try:
            after = _rewrite(before, changes)
        except Exception as exc:   # source libcst cannot parse: shown, never written
            raise NoPlace(f"{Path(path).name} cannot be rewritten: {type(exc).__name__}") from None
        if after == before:
            raise NoPlace(f"the edit finds nothing to change at line {changes[0].line} of {Path(path).name}")


def _passed_down(trace: Trace, chain: list, location: Location, change: Change) -> bool:
    """A size written away from the line that built the layer it resizes: where it was chosen further out."""
    if change.kind not in ("argument", "keyword", "assign"):
        return False
    built = {trace.layer(edit.layer).source for one in chain for edit in one.edits
             if edit.on == "layer" and edit.op == "resize" and trace.layer(edit.layer) is not None}
    return bool(built) and location not in built


def _described(location: Location, change: Change) -> str:
    """`m.py:51: num_tags=20 in the TagNet(...) call`, where a change goes, for the report."""
    value = _code(change.value)
    if change.kind == "assign":
        return f"{location}: {change.keyword} = {value}"
    if change.kind in ("argument", "keyword"):
        argument = f"{change.keyword}={value}" if change.keyword else f"argument {change.index + 1} = {value}"
        return f"{location}: {argument} in the `{change.callee}(...)` call"
    return str(location)


def _change(trace: Trace, edit: Edit, insert: str) -> list[tuple[Location, Change]]:
    found = _one_change(trace, edit, insert)
    return [found] if isinstance(found, tuple) else found


def _one_change(trace: Trace, edit: Edit, insert: str):
    if edit.on == "layer" and edit.op in ("resize", "set"):
        layer = trace.layer(edit.layer)
        if layer is None or layer.source is None:
            raise NoPlace(f"shapecheck does not know which line built `{edit.layer}`")
        if not _is_project_file(layer.source):
            raise NoPlace(f"`{edit.layer}` is built at {layer.source}, outside your project")
        if layer.source.defined_in is not None:   # built inside a library: change the user's call into it
            if edit.op == "set" and {name for name, _ in edit.args} == {"activation"}:
                return _library_head_activation(trace, layer.source, edit)
            if edit.op != "resize":
                raise NoPlace(f"`{edit.layer}` is built inside a library ({layer.source.defined_in})")
            return _library_head(trace, layer.source, edit, insert)
        ordinal = _call_ordinal(trace, layer)
        if edit.op == "set":   # a flag passed down (`batch_first=batch_first`) is set where it was chosen
            (name, value), = edit.args
            return _decided(deciding_argument(layer.source, layer.type, None, name, ordinal), value)
        (key, size), = edit.args
        slot = _size_slot(key, layer.type)
        if slot is None:
            raise NoPlace(f"shapecheck does not know which argument of `{layer.type}` sets its size")
        return _decided(deciding_argument(layer.source, layer.type, *slot, ordinal), size)
    if edit.on == "layer" and edit.op in ("drop_op", "swap_op", "op_dim", "flatten_op", "permute_op"):
        return _op_change(trace, edit)
    raise NoPlace(f"`{edit.op}` edits of the {edit.on} are not written into source")


def deciding_argument(location: Location, callee: str, index: int | None, keyword: str, ordinal: int = 0):
    """`decides.deciding_argument`, its `Undecided` reason as `NoPlace`."""
    try:
        return decides.deciding_argument(location, callee, index, keyword, ordinal)
    except decides.Undecided as why:
        raise NoPlace(str(why)) from None


def _decided(decision: decides.Decision, value) -> tuple[Location, Change]:
    where = decision.location
    if not _is_project_file(where):
        raise NoPlace(f"the value is chosen at {where}, outside your project")
    if decision.constant:
        return where, Change(where.line, "assign", keyword=decision.constant, value=value)
    kind = "argument" if decision.present else "keyword"
    return where, Change(where.line, kind, decision.callee, decision.index, decision.keyword, value,
                         ordinal=decision.ordinal, replaces=decision.expression)


def _call_ordinal(trace: Trace, layer) -> int:
    """Which of its line's calls of the layer's class built `layer` (layers are built, and traced, left to right);
    raises `NoPlace` when one call built several (a loop, a helper): one literal there would fit none of them."""
    built = [other for other in trace.layers if other.source == layer.source and other.type == layer.type]
    if len(built) != decides.count_calls(layer.source, layer.type):
        raise NoPlace(f"the line {layer.source} builds several `{layer.type}` layers")
    return built.index(layer)


def _library_head_activation(trace: Trace, where: Location, edit: Edit) -> list[tuple[Location, Change]]:
    """The activation of a library head being resized: `classifier_activation=` at a keras.applications call
    without weights (its own top is kept, with `classes=`); elsewhere the new head the resize writes carries it."""
    function = trace.library.partition(":")[2]
    (_, activation), = edit.args
    if trace.library.startswith("keras.applications") and function and activation != "softmax" \
            and decides.without_weights(where, function):   # softmax is the top's own default
        return [(where, Change(where.line, "keyword", function, keyword="classifier_activation", value=activation))]
    return []


def _library_head(trace: Trace, where: Location, edit: Edit, insert: str) -> list[tuple[Location, Change]]:
    """A head a library built, resized the library's way where the user chose its size: `num_classes=` for timm,
    `num_labels=` for transformers (on `from_pretrained`, or on the config a model is built from), `classes=` for
    a keras.applications model built without weights (else `include_top=False` and a new head), else a
    replacement statement after the line (`model.fc = nn.Linear(model.fc.in_features, 1)`). `insert` is the
    recipe's statement for after the line, "" when it has none."""
    (key, size), = edit.args
    line = where.line
    if key != "out":
        raise NoPlace(f"the layer's input size is set inside the library ({where.defined_in})")
    called = {decides.last_name(call) for call in decides.calls_at(where)}
    if trace.library.startswith("timm"):
        callee = next((name for name in ("create_model", "reset_classifier") if name in called), "")
        if not callee:
            raise NoPlace(f"no `timm.create_model(...)` or `reset_classifier(...)` call at {where}")
        return [_decided(deciding_argument(where, callee, 0 if callee == "reset_classifier" else None,
                                           "num_classes"), size)]
    if trace.library.startswith("transformers"):
        if "from_pretrained" in called:
            return [_decided(deciding_argument(where, "from_pretrained", None, "num_labels"), size),
                    (where, Change(line, "keyword", "from_pretrained", keyword="ignore_mismatched_sizes", value=True))]
        decision = decides.model_config(where, trace.library.partition(":")[2], "num_labels")
        if decision is None:
            raise NoPlace(f"the model at {where} is built from a config shapecheck cannot find: set its `num_labels`")
        return [_decided(decision, size)]
    if trace.library.startswith("keras.applications"):
        function = trace.library.partition(":")[2]
        if function and decides.without_weights(where, function):
            return [_decided(deciding_argument(where, function, None, "classes"), size)]
        if not function or not insert:
            raise NoPlace(f"no `{function or 'keras.applications'}(...)` call at {where}")
        return [(where, Change(line, "keyword", function, keyword="include_top", value=False)),
                (where, Change(line, "keyword", function, keyword="pooling", value="avg")),
                (where, Change(line, "insert_after", value=insert))]
    if not insert:
        raise NoPlace(f"`{edit.layer}` is built inside a library ({where.defined_in}) and has no replacement")
    return [(where, Change(line, "insert_after", value=insert))]


def _op_change(trace: Trace, edit: Edit) -> tuple[Location, Change]:
    name, ordinal = edit.args[:2]
    ops = [op for op in trace.ops if op.name == name]
    if ordinal >= len(ops):
        raise NoPlace(f"the trace has no `{name}` number {ordinal + 1}")
    op = ops[ordinal]
    layer = trace.layer(op.layer)
    if layer is not None and layer.kind != "activation" and layer.source is not None and trace.framework == "keras" \
            and edit.op in ("drop_op", "swap_op"):   # Dense(1, activation="softmax"): the layer's own argument
        value = None if edit.op == "drop_op" else edit.args[2]
        return _decided(deciding_argument(layer.source, layer.type, None, "activation",
                                          _call_ordinal(trace, layer)), value)
    if layer is not None and layer.kind == "activation" and layer.source is not None:   # a module: nn.Softmax()
        where, callee = _unconditional(layer.source, layer.type), layer.type
        if edit.op == "drop_op":
            return where, Change(where.line, "replace_call", callee, value="nn.Identity()")
        if edit.op == "swap_op" and edit.args[2] == "sigmoid":   # elementwise: nn.Sigmoid() takes no `dim`
            return where, Change(where.line, "replace_call", callee, value="nn.Sigmoid()")
        if edit.op == "swap_op":
            return where, Change(where.line, "rename", callee, value=_MODULE_NAMES.get(edit.args[2]))
        return _literal_dim(where, callee), Change(where.line, "keyword", callee, keyword="dim", value=edit.args[2])
    if op.source is None or op.source.defined_in is not None:
        raise NoPlace("the op is not called in your own code")
    where = _unconditional(op.source, name)
    if edit.op == "flatten_op":   # x.view(-1, k) -> x.view(x.size(0), -1)
        return where, Change(where.line, "method", name, value=(name, "{x}.size(0), -1"))
    if edit.op == "permute_op":   # x.view(t, n, c) -> x.permute(1, 0, 2)
        return where, Change(where.line, "method", name, value=("permute", ", ".join(map(str, edit.args[2]))))
    if edit.op == "drop_op":
        return where, Change(where.line, "unwrap", name)
    if edit.op == "swap_op" and edit.args[2] == "sigmoid":
        return where, Change(where.line, "replace_call", name, value="{x}.sigmoid()")   # no import needed
    if edit.op == "swap_op":
        return where, Change(where.line, "rename", name, value=edit.args[2])
    return _literal_dim(where, name), Change(where.line, "keyword", name, keyword="dim", value=edit.args[2])


def _unconditional(where: Location, callee: str) -> Location:
    """`where`, when its `callee` call runs whatever the model's settings; under `if self.return_probabilities:` the
    setting decides, and editing one branch would leave a setting that no longer does what it says."""
    test = decides.condition_of(where, callee)
    if test:
        raise NoPlace(f"`{callee}` at {where} runs on one branch of `{test}`: change that setting where it is chosen")
    return where


def _literal_dim(where: Location, callee: str) -> Location:
    """`where`, when the call's `dim=` is written there as a number (or not at all); a `dim=self.class_dim` is
    chosen elsewhere, and a number in its place would leave that choice doing nothing."""
    given = decides.keyword_value(where, callee, "dim")
    if given is not None and not isinstance(given, ast.Constant):
        raise NoPlace(f"`{callee}`'s `dim` is `{ast.unparse(given)}` at {where}: set it where that is chosen")
    return where


_MODULE_NAMES = {"log_softmax": "LogSoftmax", "softmax": "Softmax"}


def _size_slot(key: str, type_name: str) -> tuple[int, str] | None:
    table = _SIZE_ARGUMENTS[key]
    if type_name in table:
        return table[type_name]
    stem = type_name.rstrip("123d").rstrip("D") if type_name[-2:] in ("1d", "2d", "3d") else type_name
    return table.get(stem)


def _is_project_file(location: Location) -> bool:
    path = Path(location.file or location.path).resolve()
    return path.is_relative_to(Path.cwd().resolve()) and "site-packages" not in path.parts and path.suffix == ".py"


def _rewrite(source: str, changes: list[Change]) -> str:
    import libcst as cst
    from libcst.metadata import MetadataWrapper

    module = cst.parse_module(source)
    rewriter = _rewriter(changes)
    return _without_dead_imports(source, MetadataWrapper(module).visit(rewriter).code)


def _without_dead_imports(before: str, after: str) -> str:
    """`after` less the imports that the rewrite left unused (`import torch.nn.functional as F` once the only
    `F.softmax` is gone); an import that was unused before is the user's business, not the fix's."""
    import libcst as cst

    dead = _used_names(before) - _used_names(after)
    if not dead:
        return after

    class DropImports(cst.CSTTransformer):
        def leave_Module(self, original, updated):
            body, carried = [], []   # a dropped line's blank lines and comments go to the next line kept
            for statement in updated.body:
                kept = _without_imports_of(cst, statement, dead)
                if kept is None:
                    carried += list(statement.leading_lines)
                    continue
                if carried:
                    kept = kept.with_changes(leading_lines=[*carried, *kept.leading_lines])
                    carried = []
                body.append(kept)
            return updated.with_changes(body=body)

    return cst.parse_module(after).visit(DropImports()).code


def _without_imports_of(cst, statement, dead: set[str]):
    """A top-level statement less its imports of `dead` names; None when nothing of it is left."""
    if not isinstance(statement, cst.SimpleStatementLine):
        return statement
    body = []
    for small in statement.body:
        if isinstance(small, (cst.Import, cst.ImportFrom)) and isinstance(small.names, (list, tuple)):
            kept = [alias for alias in small.names if _bound_name(cst, alias) not in dead]
            if not kept:
                continue
            kept[-1] = kept[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
            small = small.with_changes(names=kept)
        body.append(small)
    return statement.with_changes(body=body) if body else None


def _used_names(source: str) -> set[str]:
    """The names the module reads (not those its imports bind)."""
    return {node.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}


def _bound_name(cst, alias) -> str:
    if alias.asname is not None:
        return alias.asname.name.value
    return cst.helpers.get_full_name_for_node(alias.name).split(".")[0]


def _rewriter(changes: list[Change]):
    import libcst as cst
    from libcst.metadata import PositionProvider

    by_line = defaultdict(list)
    for change in changes:
        by_line[change.line].append(change)

    class Rewriter(cst.CSTTransformer):
        METADATA_DEPENDENCIES = (PositionProvider,)

        def __init__(self):
            super().__init__()
            self.done: set[int] = set()
            self.calls: dict[tuple[int, str], int] = defaultdict(int)   # calls met so far, per line and name
            self.order: dict[int, int] = {}   # each call's ordinal among its line's calls of the same name

        def visit_Call(self, node):   # pre-order, so that the count follows the source left to right
            line = self.get_metadata(PositionProvider, node).start.line
            key = (line, _last_name(node.func))
            self.order[id(node)] = self.calls[key]
            self.calls[key] += 1
            return True

        def leave_Call(self, original, updated):
            line = self.get_metadata(PositionProvider, original).start.line
            for change in by_line.get(line, ()):
                if id(change) in self.done or _last_name(original.func) != change.callee:
                    continue
                if change.ordinal is not None and self.order.get(id(original)) != change.ordinal:
                    continue
                replaced = _apply(cst, change, updated)
                if replaced is not None:
                    self.done.add(id(change))
                    if not isinstance(replaced, cst.Call):   # the call itself is gone (unwrapped, replaced)
                        return replaced
                    updated = replaced
            return updated

        def leave_Assign(self, original, updated):
            line = self.get_metadata(PositionProvider, original).start.line
            for change in by_line.get(line, ()):
                target = original.targets[0].target if len(original.targets) == 1 else None
                if change.kind == "assign" and isinstance(target, cst.Name) and target.value == change.keyword:
                    self.done.add(id(change))
                    return updated.with_changes(value=_literal(cst, change.value))
            return updated

        def leave_SimpleStatementLine(self, original, updated):
            line = self.get_metadata(PositionProvider, original).start.line
            updated = _without_stale_comments(cst, updated, [c for c in by_line.get(line, ()) if id(c) in self.done])
            inserts = [c for c in by_line.get(line, ()) if c.kind == "insert_after" and id(c) not in self.done]
            if not inserts:
                return updated
            target, returned = _assigned_name(original), _returned(updated)
            if target is None and returned is None:
                return updated
            # `return resnet50()` becomes `model = resnet50()`, the replacement, `return model`
            assigned = cst.parse_statement(f"{MODEL} = {returned}").body   # keeps the line's comment
            statements = [updated if target else updated.with_changes(body=assigned)]
            for change in inserts:
                self.done.add(id(change))
                statements.append(cst.parse_statement(re.sub(rf"\b{MODEL}\b", target or MODEL, change.value)))
            if target is None:
                statements.append(cst.parse_statement(f"return {MODEL}"))
            return cst.FlattenSentinel(statements)

        def leave_Module(self, original, updated):
            inserted = " ".join(c.value for c in changes if c.kind == "insert_after" and id(c) in self.done)
            needed = [statement for name, statement in _IMPORTS.items()
                      if re.search(rf"\b{name}\.", inserted) and not _binds(original, name)]
            if not needed:
                return updated
            body = list(updated.body)
            position = max((i + 1 for i, s in enumerate(body) if _is_import(s)), default=0)
            body[position:position] = [cst.parse_statement(statement) for statement in needed]
            return updated.with_changes(body=body)

    return Rewriter()


def _without_stale_comments(cst, statement, changes: list[Change]):
    """`statement` less its comments that describe an op the changes removed or replaced (`# softmax turns scores
    into probabilities` once the softmax is gone): the trailing one and those on the lines just above."""
    removed = {c.callee.lower() for c in changes if c.kind in ("unwrap", "replace_call", "rename") and c.callee}
    if not removed:
        return statement

    def stale(comment) -> bool:
        return comment is not None and any(name in comment.value.lower() for name in removed)

    trailing = statement.trailing_whitespace
    if stale(trailing.comment):
        statement = statement.with_changes(trailing_whitespace=trailing.with_changes(
            whitespace=cst.SimpleWhitespace(""), comment=None))
    leading = list(statement.leading_lines)
    while leading and stale(leading[-1].comment):
        leading.pop()
    return statement.with_changes(leading_lines=leading)


# names the replacement statements spell, and the import that binds each
_IMPORTS = {"nn": "from torch import nn", "keras": "import keras", "layers": "from keras import layers"}


def _is_import(statement) -> bool:
    import libcst as cst

    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body)


def _binds(module, name: str) -> bool:
    """Whether the module's top-level imports bind `name` (`from torch import nn`, `import torch.nn as nn`)."""
    import libcst as cst

    return any(_bound_name(cst, alias) == name for statement in module.body if _is_import(statement)
               for small in statement.body if isinstance(small.names, (list, tuple)) for alias in small.names)


def _code(value) -> str:
    """`20`, `True`, `None`, `"sigmoid"`: a value as source code."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _literal(cst, value):
    return cst.parse_expression(_code(value))


def _apply(cst, change: Change, call):
    """The call with `change` applied, or None when the call does not have the expected shape."""
    if change.kind == "argument":
        value = _literal(cst, change.value)
        for position, arg in enumerate(call.args):
            if (arg.keyword is None and position == change.index and arg.star == "") or \
                    (arg.keyword is not None and arg.keyword.value == change.keyword):
                args = list(call.args)
                args[position] = arg.with_changes(value=value)
                return call.with_changes(args=args)
        return None
    if change.kind == "keyword":
        value = _literal(cst, change.value)
        args = list(call.args)
        for position, arg in enumerate(args):
            if arg.keyword is not None and arg.keyword.value == change.keyword:
                args[position] = arg.with_changes(value=value)
                return call.with_changes(args=args)
        if args and args[-1].comma is cst.MaybeSentinel.DEFAULT:
            args[-1] = args[-1].with_changes(comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" ")))
        args.append(cst.Arg(value=value, keyword=cst.Name(change.keyword),
                            equal=cst.AssignEqual(cst.SimpleWhitespace(""), cst.SimpleWhitespace(""))))
        return call.with_changes(args=args)
    if change.kind == "unwrap":
        return call.args[0].value if call.args and call.args[0].keyword is None else None
    if change.kind == "rename" and change.value:
        func = call.func
        if isinstance(func, cst.Attribute):
            return call.with_changes(func=func.with_changes(attr=cst.Name(change.value)))
        return call.with_changes(func=cst.Name(change.value))
    if change.kind == "method":   # `x.view(...)` becomes `x.<method>(<arguments>)`, `{x}` the receiver's code
        func = call.func
        if not isinstance(func, cst.Attribute):
            return None
        receiver = cst.Module([]).code_for_node(func.value)
        method, arguments = change.value
        return cst.parse_expression(f"{receiver}.{method}({arguments.format(x=receiver)})")
    if change.kind == "replace_call":   # `{x}`: the call's first argument, as written
        if "{x}" not in change.value:
            return cst.parse_expression(change.value)
        if not call.args or call.args[0].keyword is not None:
            return None
        first = call.args[0].value
        code = cst.Module([]).code_for_node(first)
        atomic = isinstance(first, (cst.Name, cst.Attribute, cst.Call, cst.Subscript))
        return cst.parse_expression(change.value.replace("{x}", code if atomic else f"({code})"))
    return None


def _last_name(func) -> str:
    import libcst as cst

    if isinstance(func, cst.Attribute):
        return func.attr.value
    return func.value if isinstance(func, cst.Name) else ""


def _returned(statement) -> str | None:
    """The code of `expr` for `return expr`."""
    import libcst as cst

    small = statement.body[0] if len(statement.body) == 1 else None
    if isinstance(small, cst.Return) and small.value is not None:
        return cst.Module([]).code_for_node(small.value)
    return None


def _assigned_name(statement) -> str | None:
    """`model` for `model = resnet50(weights=None)`."""
    import libcst as cst

    for small in statement.body:
        if isinstance(small, cst.Assign) and len(small.targets) == 1 and isinstance(small.targets[0].target, cst.Name):
            return small.targets[0].target.value
    return None


def write(patches: list[FilePatch]) -> list[str]:
    """Write each patch atomically, inside the project only; refuse files with uncommitted changes."""
    root = Path.cwd().resolve()
    for patch in patches:
        if not patch.path.is_relative_to(root):
            raise ShapecheckError(f"refusing to write `{patch.shown}`: it is outside the project ({root})")
        if not os.access(patch.path, os.W_OK):
            raise ShapecheckError(f"refusing to write `{patch.shown}`: the file is not writable")
        if _has_uncommitted_changes(patch.path):
            raise ShapecheckError(f"refusing to write `{patch.shown}`: it has uncommitted changes; commit or stash "
                                  "them, or use --fix-diff to see the patch")
    for patch in patches:
        _atomic_write(patch.path, patch.after)
    return [(p.shown, len({c.finding_key for c in p.changes})) for p in patches]


def revert(patches: list[FilePatch]) -> None:
    """Put back what `write` replaced."""
    for patch in patches:
        _atomic_write(patch.path, patch.before)


def _has_uncommitted_changes(path: Path) -> bool:
    try:
        status = subprocess.run(["git", "status", "--porcelain", "--", path.name], cwd=path.parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return status.returncode == 0 and bool(status.stdout.strip())


def _atomic_write(path: Path, text: str):
    mode = path.stat().st_mode
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
