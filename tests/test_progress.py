"""Progress on stderr: target and stage of a long check on a terminal, nothing when piped."""

from __future__ import annotations

import io
import os
import pty
import subprocess
import sys

import pytest

from shapecheck import progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_sees_the_target_and_stage_then_a_cleared_line():
    stream = Terminal()
    with progress.reporting(2, stream, delay=0) as shown:
        shown.start_target(1, "models.py:build")
        progress.stage("trace")
        shown.start_target(2, "other.py:build")
        progress.stage("rules")
    text = stream.getvalue()
    assert "shapecheck: [1/2] models.py:build: trace" in text
    assert "shapecheck: [2/2] other.py:build: rules" in text
    assert text.endswith("\r\x1b[K")   # the report starts on a clean line


def test_a_check_shorter_than_the_delay_prints_nothing():
    stream = Terminal()
    with progress.reporting(1, stream, delay=60) as shown:
        shown.start_target(1, "models.py:build")
        progress.stage("trace")
    assert stream.getvalue() == ""


def test_nothing_when_stderr_is_not_a_terminal():
    stream = io.StringIO()
    with progress.reporting(1, stream, delay=0) as shown:
        progress.stage("trace")   # no progress line active: a no-op
    assert shown is None and stream.getvalue() == ""


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_cli_shows_progress_on_a_terminal_stderr_and_keeps_stdout_clean(request):
    """A real run with stderr on a pseudo-terminal: the import of torch alone outlasts the one-second delay."""
    leader, follower = pty.openpty()
    command = [sys.executable, "-m", "shapecheck", "check", "fixtures/torch/resnet50_single_class.py:build_model",
               "--input", "2,3,64,64", "--loss", "BCEWithLogitsLoss", "--labels", "2", "--format", "json"]
    process = subprocess.run(command, cwd=request.config.rootpath, stdout=subprocess.PIPE, stderr=follower,
                             timeout=300)
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:   # the terminal is closed once everything is read
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert process.returncode == 1
    assert b"fixtures/torch/resnet50_single_class.py:build_model: " in seen
    assert b"\x1b" not in process.stdout and process.stdout.lstrip().startswith(b"{")
