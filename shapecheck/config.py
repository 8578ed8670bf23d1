"""`[tool.shapecheck]` in pyproject.toml: rule selection, severities, and the project's targets.

    [tool.shapecheck]
    select = ["SC1", "SC2"]
    ignore = ["SC207"]
    severity = { SC208 = "warning" }
    timeout = 60            # seconds a trace may take before it is stopped (0: no limit)
    audit = true            # measure the training signal on a tiny real batch (SC4xx); false: static checks only

    [[tool.shapecheck.targets]]
    target = "src/models/classifier.py:build_classifier"
    input = [16, 3, 224, 224]
    loss = "BCEWithLogitsLoss"      # several outputs: loss = { age = "mse", gender = "binary_crossentropy" }
    labels = "16,1:float32"         # labels, labels-file: one value, or a table by output name

Unknown keys and bad values are errors that name the key and its line.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from shapecheck.deadline import DEFAULT_SECONDS as DEFAULT_TIMEOUT
from shapecheck.errors import ShapecheckError
from shapecheck.findings import SEVERITIES, Severity
from shapecheck.targets import is_file_path, split

TOP_KEYS = {"select", "ignore", "severity", "targets", "timeout", "audit"}
TARGET_KEYS = {"target", "input", "input-file", "loss", "labels", "labels-file", "from-logits"}


@dataclass
class TargetConfig:
    target: str
    inputs: list[str] = field(default_factory=list)
    loss: str | tuple[str, ...] | None = None          # per output: ("age=mse", "gender=binary_crossentropy")
    labels: str | tuple[str, ...] | None = None
    labels_file: str | tuple[str, ...] | None = None
    from_logits: bool | None = None
    input_file: str | None = None


@dataclass
class Config:
    path: Path | None = None
    select: list[str] | None = None
    ignore: list[str] = field(default_factory=list)
    severity: dict[str, Severity] = field(default_factory=dict)
    targets: list[TargetConfig] = field(default_factory=list)
    timeout: float = DEFAULT_TIMEOUT   # seconds a trace may take; 0 for no limit
    audit: bool = True                 # the training-signal audit (`shapecheck.audit`)

    def targets_in(self, path: str) -> list[TargetConfig]:
        """The configured targets defined in a file (`src/model.py` for `src/model.py:build`) or equal to it."""
        wanted = Path(path).resolve()
        return [t for t in self.targets if Path(split(t.target)[0]).resolve() == wanted]


def find_pyproject(start: Path | None = None) -> Path | None:
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate / "pyproject.toml"
    return None


def load(path: Path | None = None) -> Config:
    path = path or find_pyproject()
    if path is None:
        return Config()
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ShapecheckError(f"{path}: invalid TOML: {exc}") from exc
    section = data.get("tool", {}).get("shapecheck")
    if section is None:
        return Config(path=path)
    return _parse(section, path, text)


def _parse(section: dict, path: Path, text: str) -> Config:
    def fail(key: str, problem: str, table: int | None = None):
        raise ShapecheckError(f"{path}:{_line_of(text, key, table)}: `{key}` {problem}")

    for key in section:
        if key not in TOP_KEYS:
            fail(key, f"is not a shapecheck setting (known: {', '.join(sorted(TOP_KEYS))})")
    config = Config(path=path)
    for key in ("select", "ignore"):
        if key in section:
            value = section[key]
            if not isinstance(value, list) or not all(isinstance(v, str) and v.startswith("SC") for v in value):
                fail(key, "must be a list of rule codes or prefixes, e.g. [\"SC1\", \"SC207\"]")
            setattr(config, key, value)
    severity = section.get("severity", {})
    if not isinstance(severity, dict) or not all(v in SEVERITIES for v in severity.values()):
        fail("severity", f"must map rule codes to one of {', '.join(SEVERITIES)}")
    config.severity = dict(severity)
    timeout = section.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        fail("timeout", "must be a number of seconds (0 for no limit)")
    config.timeout = float(timeout)
    config.audit = section.get("audit", True)
    if not isinstance(config.audit, bool):
        fail("audit", "must be true or false")
    targets = section.get("targets", [])
    if not isinstance(targets, list):
        fail("targets", "must be an array of tables ([[tool.shapecheck.targets]])")
    config.targets = [_target(entry, functools.partial(fail, table=index), path.parent)
                      for index, entry in enumerate(targets)]
    return config


def _target(entry, fail, base: Path) -> TargetConfig:
    if not isinstance(entry, dict):
        fail("targets", "entries must be tables")
    for key in entry:
        if key not in TARGET_KEYS:
            fail(key, f"is not a target setting (known: {', '.join(sorted(TARGET_KEYS))})")
    if not isinstance(entry.get("target"), str):
        fail("target", "is required in every [[tool.shapecheck.targets]] and must be a string")
    inputs = entry.get("input", [])
    if isinstance(inputs, str):
        inputs = [inputs]
    elif inputs and all(isinstance(d, int) for d in inputs):
        inputs = [",".join(map(str, inputs))]
    elif all(isinstance(i, (list, str)) for i in inputs):
        inputs = [i if isinstance(i, str) else ",".join(map(str, i)) for i in inputs]
    else:
        fail("input", "must be a shape ([16, 3, 224, 224] or \"16,3,224,224\") or a list of shapes")
    for key in ("loss", "labels", "labels-file"):   # one value, or a table of one per output
        if key in entry and not isinstance(entry[key], str) and not _per_output(entry[key]):
            fail(key, "must be a string, or a table of one string per output ({ age = \"mse\", ... })")
    if "input-file" in entry and not isinstance(entry["input-file"], str):
        fail("input-file", "must be a string")
    if "from-logits" in entry and not isinstance(entry["from-logits"], bool):
        fail("from-logits", "must be true or false")
    labels_file, input_file = entry.get("labels-file"), entry.get("input-file")
    if isinstance(labels_file, dict):
        labels_file = {output: _path_from(base, path) for output, path in labels_file.items()}
    elif labels_file:
        labels_file = _path_from(base, labels_file)
    return TargetConfig(_target_from(base, entry["target"]), inputs, _as_flags(entry.get("loss")),
                        _as_flags(entry.get("labels")), _as_flags(labels_file), entry.get("from-logits"),
                        input_file and _path_from(base, input_file))


def _per_output(value) -> bool:
    return isinstance(value, dict) and bool(value) and all(isinstance(v, str) for v in value.values())


def _as_flags(value):
    """A table of one value per output as the command line's `OUTPUT=VALUE` entries."""
    return tuple(f"{output}={item}" for output, item in value.items()) if isinstance(value, dict) else value


# Paths in pyproject.toml are relative to its folder; shapecheck may run from any folder below it.
def _target_from(base: Path, target: str) -> str:
    where, factory = split(target)
    if not is_file_path(where):
        return target    # a dotted module name
    return f"{_path_from(base, where)}:{factory}" if factory else _path_from(base, where)


def _path_from(base: Path, path: str) -> str:
    return path if Path(path).is_absolute() else os.path.relpath(base / path)


def _line_of(text: str, key: str, table: int | None = None) -> int:
    """The line of `key`; within the `table`-th [[tool.shapecheck.targets]] when given."""
    start = 0
    if table is not None:
        headers = list(re.finditer(r"^\s*\[\[\s*tool\.shapecheck\.targets\s*\]\]", text, flags=re.MULTILINE))
        start = headers[table].start() if table < len(headers) else 0
    match = re.compile(rf"^\s*\"?{re.escape(key)}\"?\s*=", flags=re.MULTILINE).search(text, start)
    return text.count("\n", 0, match.start()) + 1 if match else 1
