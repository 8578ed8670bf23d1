"""Turn verified recipes into edits of the user's own source (`--fix-diff`, `--fix`), with libcst so formatting and
comments stay as they were.

Only a line the user wrote is changed: the constructor call of the offending layer (`nn.Linear(512, 1000)` ->
`nn.Linear(512, 1)`), the call of an op in `forward` (`F.softmax(x, dim=1)` -> `x`), or, for a layer a library
built (torchvision's `fc`), a replacement statement after the user's line that called the library. Library code
(site-packages, torchvision, keras.applications) is never touched.
"""

from __future__ import annotations

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

from shapecheck.edits import Edit
from shapecheck.engine import Result
from shapecheck.errors import ShapecheckError
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
    kind: str                   # "argument", "keyword", "unwrap", "rename", "insert_after"
    callee: str = ""            # the last name of the call to change (`Linear`, `softmax`)
    index: int | None = None
    keyword: str = ""
    value: object = None
    finding_key: tuple = ()     # (target, rule, layer) of the finding it fixes, to count findings fixed

    @property
    def key(self) -> tuple:
        """Two findings fixed by the same change (a head both SC101 and SC108 name) change the line once."""
        return self.line, self.kind, self.callee, self.keyword, repr(self.value)


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


def plan(results: list[Result]) -> list[FilePatch]:
    """The source patches of every finding's first verified recipe that maps onto the user's code."""
    return _patches([(result, finding) for result in results for finding in result.findings])


def for_finding(result: Result, finding) -> list[FilePatch]:
    """The source patch of one finding's first verified recipe (SARIF `fixes`)."""
    return _patches([(result, finding)])


def _patches(findings) -> list[FilePatch]:
    patches: dict[Path, FilePatch] = {}
    for result, finding in findings:
        if result.trace is None:
            continue
        changes = next((found for fix in finding.fixes if fix.verified
                        for found in [_changes(result.trace, _chain(finding.fixes, fix))] if found), None)
        for location, change in changes or ():
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


def _changes(trace: Trace, chain: list) -> list[tuple[Location, Change]] | None:
    """The source changes for a recipe's model edits, or None when one of them has no place in the user's code.
    Its label and loss edits live in the training code shapecheck does not see: `plan` lists them as notes."""
    found = [_change(trace, edit, fix.recipe.insert) for fix in chain for edit in fix.edits
             if edit.on not in ("labels", "loss")]
    return [change for changes in found for change in changes] if found and None not in found else None


def applied_chain(result: Result, finding) -> list:
    """The fixes whose recipe the patch of `finding` applies (the first verified one that maps onto source)."""
    return next((_chain(finding.fixes, fix) for fix in finding.fixes if fix.verified
                 and result.trace is not None and _changes(result.trace, _chain(finding.fixes, fix))), [])


def needs_training_code(result: Result, finding) -> bool:
    """The patched recipe of `finding` also has a label or loss step, which only the user's training code can take."""
    return any(_in_training_code(fix) for fix in applied_chain(result, finding))


def outside_source(results: list[Result]) -> list[str]:
    """The label and loss steps of the patched recipes, which the user applies in their training code."""
    return [f"{finding.rule}: {fix}" for result in results for finding in result.findings
            for fix in applied_chain(result, finding) if _in_training_code(fix)]


def _in_training_code(fix) -> bool:
    """A label or loss step: it lives in code shapecheck does not see."""
    return bool(fix.edits) and all(edit.on in ("labels", "loss") for edit in fix.edits)


def _change(trace: Trace, edit: Edit, insert: str) -> list[tuple[Location, Change]] | None:
    found = _one_change(trace, edit, insert)
    return [found] if isinstance(found, tuple) else found


def _one_change(trace: Trace, edit: Edit, insert: str):
    if edit.on == "layer" and edit.op in ("resize", "set"):
        layer = trace.layer(edit.layer)
        if layer is None or layer.source is None or not _is_project_file(layer.source):
            return None
        if layer.source.defined_in is not None:   # built inside a library: change the user's call into it
            if edit.op == "set" and {name for name, _ in edit.args} == {"activation"}:
                return []   # the new head the resize writes carries its activation
            return _library_head(trace, layer.source, edit, insert) if edit.op == "resize" else None
        if _built_several(trace, layer):   # a loop or a helper builds them all: one literal would fit none
            return None
        if edit.op == "set":
            (name, value), = edit.args
            return layer.source, Change(layer.source.line, "keyword", layer.type, keyword=name, value=value)
        (key, size), = edit.args
        slot = _size_slot(key, layer.type)
        if slot is None:
            return None
        return layer.source, Change(layer.source.line, "argument", layer.type, slot[0], slot[1], size)
    if edit.on == "layer" and edit.op in ("drop_op", "swap_op", "op_dim", "flatten_op", "permute_op"):
        return _op_change(trace, edit)
    return None


def _built_several(trace: Trace, layer) -> bool:
    return sum(1 for other in trace.layers if other.source == layer.source and other.type == layer.type) > 1


def _library_head(trace: Trace, where: Location, edit: Edit, insert: str) -> list[tuple[Location, Change]] | None:
    """A head a library built, resized the library's way at the user's line: `num_classes=` for timm,
    `num_labels=` for transformers' `from_pretrained`, `include_top=False` and a new head for keras.applications,
    else a replacement statement after the line (`model.fc = nn.Linear(model.fc.in_features, 1)`). `insert` is the
    recipe's statement for after the line, "" when it has none."""
    (key, size), = edit.args
    line = where.line
    if key != "out":
        return None
    if trace.library.startswith("timm"):
        return [(where, Change(line, "keyword", "create_model", keyword="num_classes", value=size))]
    if trace.library.startswith("transformers"):
        return [(where, Change(line, "keyword", "from_pretrained", keyword="num_labels", value=size)),
                (where, Change(line, "keyword", "from_pretrained", keyword="ignore_mismatched_sizes", value=True))]
    if trace.library.startswith("keras.applications"):
        function = trace.library.partition(":")[2]
        if not function or not insert:
            return None
        return [(where, Change(line, "keyword", function, keyword="include_top", value=False)),
                (where, Change(line, "keyword", function, keyword="pooling", value="avg")),
                (where, Change(line, "insert_after", value=insert))]
    return [(where, Change(line, "insert_after", value=insert))] if insert else None


def _op_change(trace: Trace, edit: Edit) -> tuple[Location, Change] | None:
    name, ordinal = edit.args[:2]
    ops = [op for op in trace.ops if op.name == name]
    if ordinal >= len(ops):
        return None
    op = ops[ordinal]
    layer = trace.layer(op.layer)
    if layer is not None and layer.kind == "activation" and layer.source is not None:   # a module: nn.Softmax()
        where, callee = layer.source, layer.type
        if edit.op == "drop_op":
            return where, Change(where.line, "replace_call", callee, value="nn.Identity()")
        if edit.op == "swap_op" and edit.args[2] == "sigmoid":   # elementwise: nn.Sigmoid() takes no `dim`
            return where, Change(where.line, "replace_call", callee, value="nn.Sigmoid()")
        if edit.op == "swap_op":
            return where, Change(where.line, "rename", callee, value=_MODULE_NAMES.get(edit.args[2]))
        return where, Change(where.line, "keyword", callee, keyword="dim", value=edit.args[2])
    if op.source is None or op.source.defined_in is not None:
        return None
    where = op.source
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
    return where, Change(where.line, "keyword", name, keyword="dim", value=edit.args[2])


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
    return MetadataWrapper(module).visit(rewriter).code


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

        def leave_Call(self, original, updated):
            line = self.get_metadata(PositionProvider, original).start.line
            for change in by_line.get(line, ()):
                if id(change) in self.done or _last_name(original.func) != change.callee:
                    continue
                replaced = _apply(cst, change, updated)
                if replaced is not None:
                    self.done.add(id(change))
                    if not isinstance(replaced, cst.Call):   # the call itself is gone (unwrapped, replaced)
                        return replaced
                    updated = replaced
            return updated

        def leave_SimpleStatementLine(self, original, updated):
            line = self.get_metadata(PositionProvider, original).start.line
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


# names the replacement statements spell, and the import that binds each
_IMPORTS = {"nn": "from torch import nn", "keras": "import keras", "layers": "from keras import layers"}


def _is_import(statement) -> bool:
    import libcst as cst

    return isinstance(statement, cst.SimpleStatementLine) and any(
        isinstance(small, (cst.Import, cst.ImportFrom)) for small in statement.body)


def _binds(module, name: str) -> bool:
    """Whether the module's top-level imports bind `name` (`from torch import nn`, `import torch.nn as nn`)."""
    import libcst as cst

    for statement in module.body:
        if not _is_import(statement):
            continue
        for small in statement.body:
            names = small.names if isinstance(small.names, (list, tuple)) else ()
            for alias in names:
                bound = alias.asname.name.value if alias.asname else cst.helpers.get_full_name_for_node(alias.name)
                if bound == name:
                    return True
    return False


def _apply(cst, change: Change, call):
    """The call with `change` applied, or None when the call does not have the expected shape."""
    if change.kind == "argument":
        value = cst.Integer(str(change.value))
        for position, arg in enumerate(call.args):
            if (arg.keyword is None and position == change.index and arg.star == "") or \
                    (arg.keyword is not None and arg.keyword.value == change.keyword):
                args = list(call.args)
                args[position] = arg.with_changes(value=value)
                return call.with_changes(args=args)
        return None
    if change.kind == "keyword":
        value = cst.parse_expression(json.dumps(change.value) if isinstance(change.value, str) else repr(change.value))
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
