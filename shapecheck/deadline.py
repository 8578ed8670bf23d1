"""Stop a forward pass that never ends: after the time allowed, the trace stops where the model was and says so.

SIGALRM interrupts the model's own Python code (a `while True:` in `forward`); the exception derives from
BaseException so that a model's `except Exception:` cannot swallow it. Only in the main thread, where signals are
delivered; elsewhere (and on platforms without SIGALRM) checks run without a limit.
"""

from __future__ import annotations

import contextlib
import signal
import threading

DEFAULT_SECONDS = 60.0


class TraceTimeout(BaseException):
    def __init__(self, seconds: float, where: str):
        super().__init__(f"did not finish within {seconds:g} s")
        self.seconds, self.where = seconds, where


@contextlib.contextmanager
def deadline(seconds: float | None):
    """Raise TraceTimeout in the code running when `seconds` have passed (0 or None: no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        from shapecheck.adapters.sources import running_line

        raise TraceTimeout(seconds, running_line(frame))

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
