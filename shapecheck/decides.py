"""The user's own source, read: the line that decides a size (where a fix should change it, so that it lands where
the user chose the value), and the names a training step gives its loss call (for recipes in the user's words).

A head built as `nn.Linear(width * 4, num_tags)` inside `TagNet.__init__` does not decide its width: the call
`TagNet(num_tags=10)` does. Writing `20` into the class would give every `TagNet(num_tags=...)` 20 outputs and
leave the real mistake at the call. So an argument is followed outwards through the user's own frames (recorded
when the layer was built, `Location.callers`) while it is a parameter of the function it is passed in, to the
call that gives it a literal, gives it nothing (its default: the argument is added there), or names a constant
assigned once (`NUM_CLASSES = 5`). The same holds for a flag (`TextModel(batch_first=False)`). Anything else
(`width * 4`, `self.pool_dim`, a value read from data) is not rewritten: the reason names the expression and its
line, for the user to set.

Read with `ast` (the standard library): this runs for every finding with a recipe, not only under `--fix`.
"""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from shapecheck.trace import Location


@dataclass(frozen=True)
class Decision:
    """Where to write a size: the argument `keyword` (or positional `index`) of the call of `callee` at
    `location`, or, with `constant`, the value of `NAME = <int>` at that line."""

    location: Location
    callee: str = ""
    index: int | None = None
    keyword: str = ""
    constant: str = ""
    present: bool = True      # False: the call leaves the argument to its default, so the keyword is added
    ordinal: int = 0          # which of the line's calls of `callee`, left to right
    expression: str = ""      # the arithmetic a new value would replace (`32 * 8 * 8`), "" for a plain literal


class Undecided(Exception):
    """No line of the user's code chooses the value as a literal: the message says where it comes from."""


def deciding_argument(location: Location, callee: str, index: int | None, keyword: str, ordinal: int = 0) -> Decision:
    """The place that chooses the value of argument (`index`, `keyword`) of the `ordinal`-th `callee` call at
    `location` (`nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))` builds two on one line)."""
    return _follow(location, callee, index, keyword, location.callers, ordinal)


def count_calls(location: Location, callee: str) -> int:
    """How many calls of `callee` start at `location`'s line."""
    return sum(last_name(call) == callee for call in calls_at(location))


def keyword_value(location: Location, callee: str, keyword: str) -> ast.expr | None:
    """The expression passed as `keyword=` to the `callee` call at `location` (None when not passed)."""
    call = _call_at(location, callee)
    return _argument(call, None, keyword) if call is not None else None


def without_weights(location: Location, function: str) -> bool:
    """`ResNet50(weights=None, ...)` at `location`: a keras.applications top built without pretrained weights takes
    any `classes=` (with ImageNet weights it must be 1000)."""
    weights = keyword_value(location, function, "weights")
    return isinstance(weights, ast.Constant) and weights.value is None


def condition_of(location: Location, callee: str) -> str:
    """The test of the `if` (or `a if test else b`) whose branch holds the `callee` call at `location`, as written
    (`self.return_probabilities`); "" when the call runs unconditionally. An op under such a test is chosen by
    whoever sets the test, not by the line that calls it."""
    call = _call_at(location, callee)
    tree = _tree(location.file or location.path)
    function = _enclosing_function(tree, call) if call is not None else None
    if function is None:
        return ""
    parents = {child: node for node in ast.walk(function) for child in ast.iter_child_nodes(node)}
    node = call
    while node in parents and node is not function:
        parent = parents[node]
        if isinstance(parent, (ast.If, ast.IfExp)) and node is not parent.test:
            return ast.unparse(parent.test)
        node = parent
    return ""


def config_argument(location: Location, callee: str, keyword: str) -> Decision | None:
    """Where `keyword=` (`num_labels`) goes on the config that a `callee(config)` call at `location` is given: the
    config call inside it, or the one `config = BertConfig(...)` of the same function or module; None when the
    config comes from elsewhere."""
    call = _call_at(location, callee)
    given = _argument(call, 0, "config") if call is not None else None
    where = location
    if isinstance(given, ast.Name):
        assigned = _single_assignment(_tree(location.file or location.path), given.id, location.line)
        given = assigned[1] if assigned is not None else None
        where = Location(location.path, assigned[0], location.file) if assigned is not None else location
    if not isinstance(given, ast.Call) or not _takes_keyword(where, last_name(given), keyword):
        return None
    return Decision(where, last_name(given), None, keyword, present=_argument(given, None, keyword) is not None)


def model_config(location: Location, model_class: str, keyword: str) -> Decision | None:
    """Where `keyword=` goes for a Hugging Face model built from a config at `location`
    (`BertForSequenceClassification(config)`, `AutoModel...from_config(config)`); None for `from_pretrained`
    (whose own `num_labels=` decides) or a config shapecheck cannot find."""
    called = {last_name(call) for call in calls_at(location)}
    if "from_pretrained" in called:
        return None
    return next((found for callee in (model_class, "from_config") if callee in called
                 for found in [config_argument(location, callee, keyword)] if found), None)


def _takes_keyword(location: Location, callee: str, keyword: str) -> bool:
    """A config class or loader takes `keyword=`; a function of the user's module only when it names it or takes
    `**kwargs` (`_config(**extra)`)."""
    tree = _tree(location.file or location.path)
    defined = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) and node.name == callee] \
        if tree is not None else []
    if not defined:
        return callee.endswith("Config") or callee in ("from_pretrained", "from_dict")
    arguments = defined[0].args
    named = [a.arg for a in (*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs)]
    return keyword in named or arguments.kwarg is not None


def loss_call(location: Location) -> tuple[str, str, str] | None:
    """(callee, prediction, target) of the loss call at `location` as the user wrote them: `F.cross_entropy`,
    `logits`, `yb` for `loss = F.cross_entropy(logits, yb)`; for Keras' `model.fit(x_train, y_train)`, the
    labels only. None when the line holds no such call."""
    for call in calls_at(location):   # outermost first: `F.cross_entropy(model(xb), yb)` before `model(xb)`
        given = {k.arg: k.value for k in call.keywords}
        prediction = call.args[0] if call.args else given.get("input")
        target = call.args[1] if len(call.args) > 1 else given.get("target", given.get("y"))
        if last_name(call) in ("fit", "train_on_batch") and target is not None:
            return "", "", ast.unparse(target)
        if prediction is not None and target is not None:
            return ast.unparse(call.func), ast.unparse(prediction), ast.unparse(target)
    return None


def last_name(call: ast.Call) -> str:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def calls_at(location: Location) -> list[ast.Call]:
    """The calls that start at `location`'s line."""
    tree = _tree(location.file or location.path)
    found = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and node.lineno == location.line] \
        if tree is not None else []
    return sorted(found, key=lambda call: call.col_offset)


def _follow(location: Location, callee: str, index: int | None, keyword: str,
            callers: tuple[Location, ...], ordinal: int = 0) -> Decision:
    call = _call_at(location, callee, ordinal)
    if call is None:
        raise Undecided(f"no call of `{callee}` at {location}")
    given = _argument(call, index, keyword)
    if given is None:
        if not keyword:
            raise Undecided(f"`{callee}` at {location} takes the value positionally in a way shapecheck cannot edit")
        return Decision(location, callee, index, keyword, present=False, ordinal=ordinal)
    if isinstance(given, ast.Constant):
        return Decision(location, callee, index, keyword, ordinal=ordinal)
    if _literal_arithmetic(given):   # `32 * 8 * 8`: chosen here, but a number in its place reads less well
        return Decision(location, callee, index, keyword, ordinal=ordinal, expression=ast.unparse(given))
    if isinstance(given, ast.Name):
        tree = _tree(location.file or location.path)
        function = _enclosing_function(tree, call)
        is_parameter, position = _parameter(function, given.id) if function is not None else (False, None)
        if is_parameter and callers:
            name = _class_of(tree, function) if function.name == "__init__" else function.name
            return _follow(callers[0], name, position, given.id, callers[1:])
        assigned = _single_assignment(tree, given.id, location.line)
        if not is_parameter and assigned is not None and isinstance(assigned[1], ast.Constant):
            return Decision(Location(location.path, assigned[0], location.file), constant=given.id)
    shown = ast.unparse(given)
    raise Undecided(f"`{callee}`'s `{keyword or index}` is `{shown}` at {location}: set the value where `{shown}` "
                    "is chosen")


@functools.lru_cache(maxsize=64)
def _parsed(path: str, mtime: float) -> ast.Module | None:
    try:
        return ast.parse(Path(path).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return None


def _tree(path: str) -> ast.Module | None:
    try:
        return _parsed(path, Path(path).stat().st_mtime)
    except OSError:
        return None


def _call_at(location: Location, callee: str, ordinal: int = 0) -> ast.Call | None:
    names = {callee, "__init__"} if callee else set()
    found = [call for call in calls_at(location) if last_name(call) in names]
    return found[ordinal] if ordinal < len(found) else None


def _argument(call: ast.Call, index: int | None, keyword: str) -> ast.expr | None:
    for given in call.keywords:
        if given.arg == keyword and keyword:
            return given.value
    positional = [arg for arg in call.args if not isinstance(arg, ast.Starred)]
    if index is not None and len(positional) == len(call.args) and index < len(positional):
        return positional[index]
    return None


def _literal_arithmetic(node: ast.expr) -> bool:
    """`4 * 8 * 8 * 4`: integers and arithmetic only."""
    if isinstance(node, ast.BinOp):
        return _literal_arithmetic(node.left) and _literal_arithmetic(node.right)
    return isinstance(node, ast.Constant) and type(node.value) is int


def _enclosing_function(tree: ast.Module | None, call: ast.Call) -> ast.FunctionDef | None:
    """The innermost function whose body holds `call`."""
    if tree is None:
        return None
    found = None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                node.lineno <= call.lineno <= (node.end_lineno or node.lineno):
            if found is None or node.lineno > found.lineno:
                found = node
    return found


def _parameter(function: ast.FunctionDef, name: str) -> tuple[bool, int | None]:
    """Whether `name` is a parameter of `function`, and the position it takes in a call (without `self`; None
    for a keyword-only one)."""
    arguments = function.args
    ordered = [a.arg for a in (*arguments.posonlyargs, *arguments.args)]
    if ordered and ordered[0] in ("self", "cls"):
        ordered = ordered[1:]
    if name in ordered:
        return True, ordered.index(name)
    return name in [a.arg for a in arguments.kwonlyargs], None


def _class_of(tree: ast.Module | None, function: ast.FunctionDef) -> str:
    for node in ast.walk(tree) if tree is not None else ():
        if isinstance(node, ast.ClassDef) and function in node.body:
            return node.name
    return function.name


def _single_assignment(tree: ast.Module | None, name: str, near: int) -> tuple[int, ast.expr] | None:
    """(line, value) of the one `name = value` in the function around line `near`, else at module level."""
    if tree is None:
        return None
    scopes = [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
              and node.lineno <= near <= (node.end_lineno or node.lineno)]
    for scope in [max(scopes, key=lambda node: node.lineno)] if scopes else []:
        found = _assignments(ast.walk(scope), name)
        if found:
            return found[0] if len(found) == 1 and found[0][1] is not None else None
    found = _assignments(tree.body, name)
    return found[0] if len(found) == 1 and found[0][1] is not None else None


def _assignments(nodes, name: str) -> list[tuple[int, ast.expr | None]]:
    """Every binding of `name` among `nodes`: `name = value`, and with no value of their own (so that a value is
    never taken for the name's when something else changes it) `name += ...`, `name: int = ...`, `for name in`."""
    found: list[tuple[int, ast.expr | None]] = []
    for node in nodes:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            found.append((node.lineno, node.value if len(node.targets) == 1 else None))
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For)) and isinstance(node.target, ast.Name) \
                and node.target.id == name:
            found.append((node.lineno, None))
    return found
