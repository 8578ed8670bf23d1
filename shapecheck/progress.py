"""Which target and which stage a long check is in, on one self-erasing stderr line, only on a terminal.

A check that ends within `DELAY` seconds prints nothing; output piped or redirected (CI, pre-commit, JSON for a
tool) never sees a progress line. Stages are announced from wherever the work happens with `stage("trace")`, a
no-op when no progress line is active.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import threading
import time

DELAY = 1.0      # seconds before the first line: quick checks stay silent
REFRESH = 0.25   # seconds between redraws of the elapsed time

_active: Progress | None = None


class Progress:
    def __init__(self, total: int, stream, delay: float = DELAY):
        self.stream, self.total, self.delay = stream, total, delay
        self.started = time.monotonic()
        self.target, self.index, self.stage = "", 0, ""
        self.shown = False
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._redraw_until_stopped, name="shapecheck-progress", daemon=True)

    def start_target(self, index: int, target: str):
        with self.lock:
            self.index, self.target, self.stage = index, target, "starting"

    def set_stage(self, stage: str):
        with self.lock:
            self.stage = stage
        self._draw()

    def _redraw_until_stopped(self):
        while not self.stopped.wait(REFRESH):
            self._draw()

    def _draw(self):
        with self.lock:
            elapsed = time.monotonic() - self.started
            if elapsed < self.delay or self.stopped.is_set():
                return
            count = f"[{self.index}/{self.total}] " if self.total > 1 else ""
            line = f"shapecheck: {count}{self.target}: {self.stage} ({elapsed:.0f} s)"
            width = shutil.get_terminal_size().columns - 1
            self.stream.write("\r" + line[:width] + "\x1b[K")
            self.stream.flush()
            self.shown = True

    def close(self):
        self.stopped.set()
        self.thread.join()
        with self.lock:
            if self.shown:   # leave the terminal as it was: the report follows on a clean line
                self.stream.write("\r\x1b[K")
                self.stream.flush()


@contextlib.contextmanager
def reporting(total: int, stream=None, delay: float = DELAY):
    """Show progress for the checks run inside, when `stream` (stderr by default) is a terminal."""
    global _active
    stream = stream or sys.stderr
    if not _is_terminal(stream):
        yield None
        return
    progress = Progress(total, stream, delay)
    _active = progress
    progress.thread.start()
    try:
        yield progress
    finally:
        _active = None
        progress.close()


def stage(name: str):
    """Announce the stage the current check is in (import, build, trace, loss, rules)."""
    if _active is not None:
        _active.set_stage(name)


def _is_terminal(stream) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
