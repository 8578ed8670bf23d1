"""What one check is asked to do. Every front-end builds a `Request`: the CLI and `[tool.shapecheck]` from the
strings the user typed (`Flags`, parsed here once, before any target is loaded), the Python API and `run`/`watch`
from the objects they hold (`shapecheck/python_api.py`). The pipeline (`shapecheck/pipeline.py`) runs it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from shapecheck import inputs as inputs_mod
from shapecheck import labels as labels_mod
from shapecheck import targets as targets_mod
from shapecheck.config import Config, TargetConfig
from shapecheck.deadline import DEFAULT_SECONDS as DEFAULT_TIMEOUT
from shapecheck.errors import ShapecheckError
from shapecheck.findings import Severity
from shapecheck.inputs import ExampleInputs
from shapecheck.labels import LabelInfo, LabelSpec
from shapecheck.losses import known_loss, suggest_loss
from shapecheck.shapes import TensorMeta, parse_spec
from shapecheck.targets import LoadedTarget
from shapecheck.trace import Location


@dataclass(frozen=True)
class Head:
    """One output of the model, checked against the loss it is trained with and its labels."""

    output: str | None = None         # which output (None: the model's main output)
    loss: str | None = None           # the loss's name; None: the model's compiled loss, if it has one
    loss_options: tuple = ()          # keyword arguments the loss is built with: (("ignore_index", 255),)
    from_logits: bool | None = None
    # real labels (a file, values), or only their shape; by output name for a model with several (an .npz keyed
    # by output, the dict a Keras `fit` was given)
    labels: LabelInfo | LabelSpec | Mapping[str, LabelInfo] | None = None


@dataclass(frozen=True)
class Request:
    target: str                       # the target's name (what `loaded` is, when given)
    loaded: LoadedTarget | None = None   # a model already in memory (Python API, `run`); else `target` is loaded
    inputs: tuple[TensorMeta, ...] = ()  # the shapes to trace at
    example: ExampleInputs | None = None   # input values (--input-file, the tensors given) when no shapes are
    heads: tuple[Head, ...] = (Head(),)
    select: frozenset[str] | None = None
    ignore: frozenset[str] = frozenset()
    severity: tuple[tuple[str, Severity], ...] = ()   # per-rule severity overrides from the config
    trust: bool = False
    timeout: float | None = DEFAULT_TIMEOUT      # seconds a trace may take (None or 0: no limit)
    verify_fixes: bool = True         # prove recipes by re-checking and one training step
    audit: bool = True                # measure the training signal on a tiny real batch (`shapecheck.audit`)
    compute_patches: bool = False     # the source patch of each verified recipe, for renderers that show it (SARIF)
    post: object = None               # the user's code between the model and the loss (PyTorch), from `run`
    loss_site: Location | None = None  # the user's line that computed the loss (`run`): recipes use its names


@dataclass(frozen=True)
class Flags:
    """What the user typed for a check, as text: the CLI's flags, or a configured target's keys under them."""

    inputs: Sequence[str] = ()
    input_file: str | None = None
    loss: str | Sequence[str] | None = None          # `mse`, or per output: `age=mse`
    labels: str | Sequence[str] | None = None
    labels_file: str | Sequence[str] | None = None
    from_logits: bool | None = None
    select: Sequence[str] | None = None
    ignore: Sequence[str] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    trust: bool = False
    timeout: float | None = None      # None: not given (the configuration's, else the default)
    verify_fixes: bool = True
    compute_patches: bool = False
    changed_files: bool = False       # the targets are files that changed, as pre-commit passes them
    audit: bool | None = None         # None: not given (the configuration's, else on)

    def request(self, target: str, loaded: LoadedTarget | None = None) -> Request:
        """The request for `target` (`loaded`, when it is in memory already); a typo or a conflict fails here,
        before any target is loaded."""
        if self.inputs and self.input_file:
            raise ShapecheckError("give either --input or --input-file, not both (the file's arrays have shapes)")
        timeout = checked_timeout(DEFAULT_TIMEOUT if self.timeout is None else self.timeout)
        inputs = tuple(parse_input(spec) for spec in self.inputs)
        example = inputs_mod.from_file(self.input_file) if self.input_file else None
        return Request(target, loaded=loaded, inputs=inputs, example=example, heads=self.heads(),
                       select=frozenset(self.select) if self.select else None, ignore=frozenset(self.ignore),
                       severity=self.severity, trust=self.trust, timeout=timeout, verify_fixes=self.verify_fixes,
                       compute_patches=self.compute_patches, audit=self.audit is not False)

    def heads(self) -> tuple[Head, ...]:
        """One head per output named in `--loss`/`--labels`/`--labels-file` (`gender=...`), and the unnamed
        values as the model's."""
        losses, specs = _by_output(self.loss, "--loss"), _by_output(self.labels, "--labels")
        files = _by_output(self.labels_file, "--labels-file")
        outputs = list(dict.fromkeys([None, *losses, *specs, *files]))
        heads = []
        for output in outputs:
            if output in specs and output in files:
                raise ShapecheckError("give either --labels or --labels-file, not both" +
                                      (f" (output `{output}`)" if output else ""))
            labels: LabelInfo | LabelSpec | Mapping[str, LabelInfo] | None = \
                LabelSpec.parse(specs[output], "--labels") if output in specs else \
                labels_mod.from_file(files[output]) if output in files else None
            heads.append(Head(output=output, loss=checked_loss(losses.get(output)), from_logits=self.from_logits,
                              labels=labels))
        named = [head for head in heads if head.output is not None]
        unnamed = heads[0]
        return tuple(named) if named and unnamed.loss is None and unnamed.labels is None else tuple(heads)


def _by_output(values: str | Sequence[str] | None, option: str) -> dict[str | None, str]:
    """`["gender=binary_crossentropy", "mse"]` -> {"gender": "binary_crossentropy", None: "mse"}."""
    given = [values] if isinstance(values, str) else list(values or ())
    found: dict[str | None, str] = {}
    for value in given:
        name, equals, rest = value.partition("=")
        output = name.strip() if equals else None
        if output in found:
            raise ShapecheckError(f"{option} is given twice" + (f" for output `{output}`" if output else "") +
                                  ": give one per output, as OUTPUT=VALUE")
        if equals and not output:
            raise ShapecheckError(f"invalid {option} `{value}`: expected OUTPUT=VALUE")
        found[output] = rest if equals else value
    return found


def parse_input(spec: str) -> TensorMeta:
    shape, dtype = parse_spec(spec, "float32", what="--input")
    return TensorMeta(shape, dtype or "float32")


def checked_loss(name: str | None) -> str | None:
    """The loss name, unless it is a typo of a known one (other unknown losses only skip the loss rules)."""
    if name and not known_loss(name) and suggest_loss(name):
        raise ShapecheckError(f"unknown loss `{name}`; did you mean `{suggest_loss(name)}`?")
    return name


def checked_timeout(seconds: float | None) -> float | None:
    if seconds is not None and not seconds >= 0:
        raise ShapecheckError(f"invalid --timeout `{seconds}`: expected seconds, 0 for no limit")
    return seconds


def plan(target_args: list[str], flags: Flags, config: Config) -> list[Request]:
    """Which targets to check, each with its request: the CLI's flags override the target's configuration.

    A `.py` file without `:factory` stands for the configured targets defined in it. One with none is an error
    that names the factories found in it, unless the arguments are changed files (pre-commit's hooks pass every
    changed file): then it is skipped. No arguments at all means every configured target.
    """
    chosen: list[tuple[str, TargetConfig | None]] = []
    if not target_args:
        if not config.targets:
            raise ShapecheckError("no targets: give TARGET arguments or configure [[tool.shapecheck.targets]] in "
                                  "pyproject.toml")
        chosen = [(t.target, t) for t in config.targets]
    for arg in target_args:
        if Path(arg).name == "pyproject.toml":   # the configuration changed: every configured target
            chosen += [(t.target, t) for t in config.targets]
            continue
        configured = [t for t in config.targets if t.target == arg] or config.targets_in(arg)
        if configured:
            chosen += [(t.target, t) for t in configured]
        elif not (arg.endswith(".py") and ":" not in arg):
            chosen.append((arg, None))
        elif not flags.changed_files:
            raise targets_mod.no_factory(arg)
    unique = {name: entry for name, entry in chosen}   # a target named twice (its file and pyproject) runs once
    return [_over_config(flags, entry, config).request(name) for name, entry in unique.items()]


def _over_config(flags: Flags, entry: TargetConfig | None, config: Config) -> Flags:
    """The CLI's flags, and the target's and the project's configuration where the CLI gives none."""
    entry = entry or TargetConfig("")
    cli_labels = bool(flags.labels or flags.labels_file)
    cli_inputs = bool(flags.inputs or flags.input_file)
    return dataclasses.replace(
        flags,
        inputs=flags.inputs if cli_inputs else entry.inputs,
        input_file=flags.input_file if cli_inputs else entry.input_file,
        loss=flags.loss or entry.loss,
        labels=flags.labels if cli_labels else entry.labels,
        labels_file=flags.labels_file if cli_labels else entry.labels_file,
        from_logits=flags.from_logits if flags.from_logits is not None else entry.from_logits,
        select=flags.select or config.select,
        ignore=flags.ignore or config.ignore,
        severity=tuple(config.severity.items()),
        timeout=flags.timeout if flags.timeout is not None else config.timeout,
        audit=flags.audit if flags.audit is not None else config.audit,
    )
