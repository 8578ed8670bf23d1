"""Resolve a TARGET argument into a model object and the adapter that can trace it.

Frameworks are detected from `sys.modules` after the user's code has imported them (as einops does), so checking
one kind of model never imports the others.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shapecheck import inputs as inputs_mod
from shapecheck import progress
from shapecheck.adapters import Adapter, keep_triton_out_after_tensorflow
from shapecheck.errors import ShapecheckError
from shapecheck.trace import Trace

TORCH_FILES = (".pt2", ".pt", ".pth", ".ts", ".jit")
KERAS_FILES = (".keras", ".h5", ".hdf5")
ONNX_FILES = (".onnx",)
FRAMEWORKS = ("keras", "torch", "onnx")   # Keras first: on its torch backend a keras.Model is also an nn.Module
# the extra (and pre-commit hook) that installs each module a model may import
EXTRA_OF = {"torch": "torch", "torchvision": "torch", "torchaudio": "torch", "keras": "keras", "tensorflow": "keras",
            "onnx": "onnx"}
HOOK_OF = {"torch": "shapecheck-torch", "keras": "shapecheck-keras", "onnx": "shapecheck"}


@dataclass
class LoadedTarget:
    target: str
    model: object
    adapter: Adapter                     # the adapter module (`shapecheck.adapters.torch`)
    sites: dict = field(default_factory=dict)
    failed_trace: Trace | None = None    # a Keras factory that raised while building: the trace of that failure
    example: inputs_mod.ExampleInputs | None = None   # input values from a factory returning (model, example_inputs)
    notes: list = field(default_factory=list)   # how the model was built, when it matters to the output


def split(target: str) -> tuple[str, str]:
    """`path/or.module:factory` -> (`path/or.module`, `factory`); a model file -> (file, "")."""
    where, sep, factory = target.rpartition(":")
    if sep and factory.isidentifier() and not _is_drive(where):
        return where, factory
    return target, ""


def is_file_path(where: str) -> bool:
    """Whether the place part of a target is a file (else a dotted module name)."""
    return (where.endswith(".py") or "/" in where or "\\" in where
            or Path(where).suffix.lower() in TORCH_FILES + KERAS_FILES + ONNX_FILES)


def load(target: str, trust: bool = False) -> LoadedTarget:
    where, factory = split(target)
    if factory:
        return _load_factory(target, where, factory)
    suffix = Path(target).suffix.lower()
    if suffix in TORCH_FILES + KERAS_FILES + ONNX_FILES:
        progress.stage("load")
        if Path(target).is_dir():
            raise ShapecheckError(f"`{target}` is a directory, not a model file", kind="load")
        if not Path(target).is_file():
            raise ShapecheckError(f"model file `{target}` does not exist", kind="load")
        if Path(target).stat().st_size == 0:
            raise ShapecheckError(f"model file `{target}` is empty", kind="load")
        if suffix in ONNX_FILES:
            adapter = _adapter("onnx")
            return LoadedTarget(target, _read(target, adapter.load_file), adapter)
        if suffix in KERAS_FILES:
            adapter = _adapter("keras")
            return LoadedTarget(target, _read(target, adapter.load_file, trust), adapter)
        adapter = _adapter("torch")
        return LoadedTarget(target, _read(target, adapter.load_file, trust), adapter)
    raise ShapecheckError(
        f"cannot check `{target}`: expected `path/to/file.py:factory`, `package.module:factory`, "
        f"or a model file ({', '.join(TORCH_FILES + KERAS_FILES + ONNX_FILES)})")


def _read(path: str, load_file, *args):
    """A model file through its adapter's loader; a damaged file that a framework fails on in a way the adapter
    did not foresee is still one line about the file."""
    try:
        return load_file(path, *args)
    except ShapecheckError:
        raise
    except Exception as exc:
        raise ShapecheckError(f"cannot load `{path}`: {_describe(exc)}", kind="load") from exc


def _is_drive(text: str) -> bool:
    return len(text) == 1 and text.isalpha()


def _load_factory(target: str, where: str, factory_name: str) -> LoadedTarget:
    progress.stage("import")
    module = _import(where)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ShapecheckError(f"`{where}` has no callable `{factory_name}`{_did_you_mean(factory_name, module)}",
                              kind="load")
    notes = []
    progress.stage("build")
    try:
        try:
            with _recording_sites() as sites, _without_weights():
                model = factory()
        except Exception as exc:
            if getattr(exc, "trace", None) is not None or "torch" not in sys.modules:
                raise
            # the factory reads its weights' values (or moves them): build it as written
            notes.append(f"built with real weights: with parameters on the meta device the factory raised "
                         f"{_describe(exc)}")
            with _recording_sites() as sites:
                model = factory()
    except Exception as exc:
        failed = getattr(exc, "trace", None)
        if failed is not None:   # a Keras layer raised while the factory built the model: a finding
            failed.target = target
            return LoadedTarget(target, None, _adapter("keras"), failed_trace=failed)
        raise _missing_framework(exc, f"`{target}`") or ShapecheckError(
            f"`{target}` raised while building the model: {_describe(exc)}", kind="load") from exc
    example = None
    if isinstance(model, tuple) and len(model) == 2 and _traceable(model[0]):
        model, example = model[0], inputs_mod.from_value(model[1], f"`{target}`'s example inputs")
    try:
        return LoadedTarget(target, model, adapter_for(model), sites, example=example, notes=notes)
    except ShapecheckError as exc:
        raise ShapecheckError(f"`{target}` returned {exc}", kind="load") from exc


def adapter_for(model):
    """The adapter of the framework the model object belongs to (only frameworks already imported are asked)."""
    for name in _imported_frameworks():
        adapter = _adapter(name)
        if adapter.owns(model):
            return adapter
    raise ShapecheckError(f"a {type(model).__name__}, not a model shapecheck can trace "
                          "(torch.nn.Module, keras.Model or onnx.ModelProto)", kind="load")


def _traceable(obj) -> bool:
    return any(_adapter(name).owns(obj) for name in _imported_frameworks())


def _imported_frameworks() -> list[str]:
    return [name for name in FRAMEWORKS if name in sys.modules]


@contextlib.contextmanager
def _recording_sites():
    """Record definition sites for every framework the user's module imported."""
    with contextlib.ExitStack() as stack:
        adapters = [_adapter(name) for name in _imported_frameworks()]
        maps = [stack.enter_context(a.recording_definition_sites()) for a in adapters]
        yield maps[0] if len(maps) == 1 else _Merged(*maps)


@contextlib.contextmanager
def _without_weights():
    """Build PyTorch models with their parameters on the meta device: a 7B decoder costs no memory and no
    initialisation. Values are made later, at a small size, only for what needs them (the probe, a real pass)."""
    if "torch" not in sys.modules:
        yield
        return
    with _adapter("torch").building_without_weights():
        yield


class _Merged:
    """Look a layer up in several frameworks' site maps."""

    def __init__(self, *maps):
        self.maps = maps

    def get(self, key, default=None):
        return next((m[key] for m in self.maps if key in m), default)


def forget_user_modules() -> None:
    """Drop the user's modules (under the working directory, outside site-packages) from `sys.modules`, so that the
    next load imports their source as it is now (after `--fix` wrote it)."""
    root, own = Path.cwd().resolve(), Path(__file__).resolve().parent
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        path = Path(file).resolve() if file and name != "__main__" else None
        if path is not None and path.is_relative_to(root) and not path.is_relative_to(own) \
                and "site-packages" not in path.parts:
            del sys.modules[name]


def _import(where: str):
    keep_triton_out_after_tensorflow()   # the user's module may import torch after a Keras target loaded TensorFlow
    if is_file_path(where):
        path = Path(where)
        if not path.is_file():
            raise ShapecheckError(f"file `{where}` does not exist", kind="load")
        name = f"_shapecheck_target_{abs(hash(str(path.resolve())))}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        writes_bytecode, sys.dont_write_bytecode = sys.dont_write_bytecode, True   # no __pycache__ in their tree
        try:
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise _missing_framework(exc, f"`{where}`") or ShapecheckError(
                f"importing `{where}` failed: {_describe(exc)}", kind="load") from exc
        finally:
            sys.path.remove(str(path.resolve().parent))
            sys.dont_write_bytecode = writes_bytecode
        return module
    if os.getcwd() not in sys.path:   # as `python -m` has it: `pkg.module:factory` is found from the project folder
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise _missing_framework(exc, f"`{where}`") or ShapecheckError(
            f"cannot import `{where}` (looked in the current folder and the installed packages): {_describe(exc)}",
            kind="load") from exc


def _did_you_mean(name: str, module) -> str:
    """`; did you mean `build_model`?` for a typo of one of the module's callables, else nothing."""
    names = [key for key, value in vars(module).items() if callable(value) and not key.startswith("_")]
    close = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean `{close[0]}`?" if close else ""


def no_factory(path: str) -> ShapecheckError:
    """The error for a `.py` target without `:factory`, naming what in the file could be one (read, not run)."""
    if not Path(path).is_file():
        return ShapecheckError(f"file `{path}` does not exist", kind="load")
    found = factory_candidates(Path(path).read_text(encoding="utf-8", errors="replace"))
    example = found[0] if found else "build_model"
    listing = f"found: {', '.join(found)}" if found else "it defines no function without arguments and no model class"
    return ShapecheckError(f"`{path}` names no factory: give one as `{path}:{example}` ({listing})")


MODEL_BASES = {"Module", "Model", "LightningModule", "PreTrainedModel", "Sequential"}   # nn.Module, keras.Model, ...


def factory_candidates(source: str) -> list[str]:
    """The top-level functions callable without arguments that return something, then the model classes
    (subclasses of `nn.Module`, `keras.Model` and the like, also through a class of the same file), in file order.
    The file is parsed, never imported: importing it would run the user's code for an error message."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    functions = [node.name for node in tree.body
                 if isinstance(node, ast.FunctionDef) and _takes_no_arguments(node) and _returns_a_value(node)]
    models: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(_base_name(b) in MODEL_BASES | set(models) for b in node.bases):
            models.append(node.name)
    return [name for name in functions + models if not name.startswith("_")]


def _takes_no_arguments(function: ast.FunctionDef) -> bool:
    args = function.args
    positional = args.posonlyargs + args.args
    keyword_required = [d for d in args.kw_defaults if d is None]
    return len(args.defaults) == len(positional) and not keyword_required


def _returns_a_value(function: ast.FunctionDef) -> bool:
    return any(isinstance(node, ast.Return) and node.value is not None for node in ast.walk(function))


def _base_name(base: ast.expr) -> str:
    """`nn.Module` -> `Module`, `keras.Model` -> `Model`, `Net` -> `Net`."""
    return base.attr if isinstance(base, ast.Attribute) else base.id if isinstance(base, ast.Name) else ""


def _adapter(name: str):
    try:
        return importlib.import_module(f"shapecheck.adapters.{name}")
    except ImportError as exc:
        raise _missing_framework(exc, "checking this target") or ShapecheckError(
            f"checking this target needs {name}: pip install 'shapecheck-dl[{name}]' ({exc})", kind="load") from exc


def _missing_framework(exc: BaseException, subject: str) -> ShapecheckError | None:
    """One line for a framework the target imports that is not installed: which one, and how to get it."""
    extra = EXTRA_OF.get((getattr(exc, "name", None) or "").partition(".")[0])
    if not isinstance(exc, ModuleNotFoundError) or extra is None:
        return None
    # pre-commit runs a `language: python` hook in its own `py_env-*` virtualenv: installing there is not the user's
    # way out, another hook is (a `language: system` hook runs in the user's environment, like the command line)
    if os.environ.get("PRE_COMMIT") == "1" and Path(sys.prefix).name.startswith("py_env-"):
        return ShapecheckError(f"{subject} needs {extra}, which this hook's environment lacks: use the "
                               f"`{HOOK_OF[extra]}` or `shapecheck-system` hook", kind="load")
    return ShapecheckError(f"{subject} needs {extra}, which is not installed: pip install 'shapecheck-dl[{extra}]'",
                           kind="load")


def _describe(exc: BaseException) -> str:
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
