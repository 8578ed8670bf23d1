"""Where a layer was defined: the first stack frame outside the framework and outside shapecheck."""

from __future__ import annotations

import functools
import os
import sys
import sysconfig
from dataclasses import replace
from pathlib import Path

from shapecheck.trace import Location

_SHAPECHECK_DIR = str(Path(__file__).resolve().parents[1])
_SITE_DIRS = sorted({sysconfig.get_paths()[k] for k in ("purelib", "platlib")}, key=len, reverse=True)
_LIBRARY_DIRS = tuple(os.path.join(d, "") for d in (*_SITE_DIRS, sysconfig.get_paths()["stdlib"]))


def display_path(filename: str) -> str:
    """Relative to the working directory for the user's files, to site-packages for installed libraries."""
    path = os.path.abspath(filename)
    for site in _SITE_DIRS:
        if path.startswith(site + os.sep):
            return os.path.relpath(path, site)
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


def user_frame(skip_dirs: tuple[str, ...], skip_self=None, depth: int = 2,
               with_callers: bool = False) -> Location | None:
    """The innermost caller that is neither framework code nor the `__init__` chain of `skip_self`; when that is
    a library (site-packages, the standard library), the user's line that called into it, if there is one.
    `with_callers`: also the user's lines further out (`Location.callers`), for a layer's definition site."""
    frame = sys._getframe(depth)
    cwd = os.getcwd()
    definition = None
    while frame is not None:
        filename = frame.f_code.co_filename
        kind = _kind(filename, skip_dirs)
        if kind != "skipped" and (skip_self is None or frame.f_locals.get("self") is not skip_self):
            here = _location(filename, frame.f_lineno, cwd)
            if kind == "user":
                callers = _callers(frame.f_back, skip_dirs, cwd) if with_callers else ()
                return replace(here, defined_in=definition, callers=callers)
            definition = definition or here
        frame = frame.f_back
    return definition


_MAX_CALLERS = 8


def _callers(frame, skip_dirs: tuple[str, ...], cwd: str) -> tuple[Location, ...]:
    """The user's frames from `frame` outwards, up to the first frame of shapecheck or the framework (which called
    the user's factory) or `_MAX_CALLERS` of them."""
    found: list[Location] = []
    while frame is not None and len(found) < _MAX_CALLERS:
        kind = _kind(frame.f_code.co_filename, skip_dirs)
        if kind == "skipped":
            break
        if kind == "user":
            found.append(_location(frame.f_code.co_filename, frame.f_lineno, cwd))
        frame = frame.f_back
    return tuple(found)


@functools.lru_cache(maxsize=4096)
def _kind(filename: str, skip_dirs: tuple[str, ...]) -> str:
    """`skipped` (the framework, shapecheck, generated code), `library` or `user`: asked for every frame of every
    op of a forward pass, so answered once per file."""
    skip = tuple(os.path.join(d, "") for d in (_SHAPECHECK_DIR, *skip_dirs))
    if filename.startswith(skip) or filename.startswith("<"):
        return "skipped"
    return "library" if os.path.abspath(filename).startswith(_LIBRARY_DIRS) else "user"


def _location(filename: str, line: int, cwd: str) -> Location:
    shown, absolute = _paths(filename, cwd)
    return Location(shown, line, absolute)


@functools.lru_cache(maxsize=4096)
def _paths(filename: str, cwd: str) -> tuple[str, str]:
    """Every op of a forward pass asks for its caller's line: the path arithmetic is done once per file (and
    working directory, which display paths are relative to)."""
    return display_path(filename), os.path.abspath(filename)


def running_line(frame) -> str:
    """Where a running program is, for a message: the innermost line of the user's code (not a library's, not
    shapecheck's), as `path:line in function`; the innermost line at all when no user code is on the stack."""
    innermost = frame
    while frame is not None:
        filename = frame.f_code.co_filename
        if _kind(filename, ()) == "user":
            break
        frame = frame.f_back
    chosen = frame or innermost
    return f"{display_path(chosen.f_code.co_filename)}:{chosen.f_lineno} in `{chosen.f_code.co_name}`"
