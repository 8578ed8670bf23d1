"""Resolve a TARGET argument into a model object and the adapter that can trace it.

Frameworks are detected from `sys.modules` after the user's code has imported them (as einops does), so checking
one kind of model never imports the others.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shapecheck.errors import ShapecheckError

TORCH_FILES = (".pt2", ".pt", ".pth", ".ts", ".jit")


@dataclass
class LoadedTarget:
    target: str
    model: object
    adapter: object                      # the adapter module (`shapecheck.adapters.torch`)
    sites: dict = field(default_factory=dict)


def load(target: str) -> LoadedTarget:
    path_part, sep, factory = target.rpartition(":")
    if sep and factory.isidentifier() and not _is_drive(path_part):
        return _load_factory(target, path_part, factory)
    if Path(target).suffix.lower() in TORCH_FILES:
        adapter = _adapter("torch")
        if not Path(target).is_file():
            raise ShapecheckError(f"model file `{target}` does not exist", kind="load")
        return LoadedTarget(target, adapter.load_file(target), adapter)
    raise ShapecheckError(
        f"cannot check `{target}`: expected `path/to/file.py:factory`, `package.module:factory`, "
        f"or a model file ({', '.join(TORCH_FILES)})")


def _is_drive(text: str) -> bool:
    return len(text) == 1 and text.isalpha()


def _load_factory(target: str, where: str, factory_name: str) -> LoadedTarget:
    module = _import(where)
    factory = getattr(module, factory_name, None)
    if not callable(factory):
        raise ShapecheckError(f"`{where}` has no callable `{factory_name}`", kind="load")
    with _recording_sites() as sites:
        try:
            model = factory()
        except Exception as exc:
            raise ShapecheckError(f"`{target}` raised while building the model: {_describe(exc)}", kind="load") from exc
    for name in ("torch",):
        if name in sys.modules:
            adapter = _adapter(name)
            if adapter.owns(model):
                return LoadedTarget(target, model, adapter, sites)
    raise ShapecheckError(f"`{target}` returned a {type(model).__name__}, not a model shapecheck can trace "
                          "(torch.nn.Module)", kind="load")


@contextlib.contextmanager
def _recording_sites():
    """Record definition sites for every framework already imported by the user's module."""
    if "torch" in sys.modules:
        with _adapter("torch").recording_definition_sites() as sites:
            yield sites
    else:
        yield {}


def _import(where: str):
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where)
        if not path.is_file():
            raise ShapecheckError(f"file `{where}` does not exist", kind="load")
        name = f"_shapecheck_target_{abs(hash(str(path.resolve())))}"
        if name in sys.modules:
            return sys.modules[name]
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.resolve().parent))
        try:
            sys.modules[name] = module
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise ShapecheckError(f"importing `{where}` failed: {_describe(exc)}", kind="load") from exc
        finally:
            sys.path.remove(str(path.resolve().parent))
        return module
    try:
        return importlib.import_module(where)
    except Exception as exc:
        raise ShapecheckError(f"cannot import `{where}`: {_describe(exc)}", kind="load") from exc


def _adapter(name: str):
    try:
        return importlib.import_module(f"shapecheck.adapters.{name}")
    except ImportError as exc:
        raise ShapecheckError(f"checking this target needs {name}: pip install 'shapecheck-dl[{name}]' ({exc})",
                              kind="load") from exc


def _describe(exc: BaseException) -> str:
    first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
