"""Inline suppression: `# shapecheck: ignore[SC101]` (or a bare `# shapecheck: ignore`) on the line that defines
the layer a finding points at."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from shapecheck.findings import Finding

_COMMENT = re.compile(r"#\s*shapecheck:\s*ignore(?:\[(?P<codes>[A-Z0-9,\s]+)\])?")


def partition(findings: list[Finding]) -> tuple[list[Finding], int]:
    """The findings left, and how many a comment silenced (the summary counts them: silence stays visible)."""
    kept = [finding for finding in findings if not is_suppressed(finding)]
    return kept, len(findings) - len(kept)


def is_suppressed(finding: Finding) -> bool:
    if finding.location is None:
        return False
    line = _line(finding.location.file or finding.location.path, finding.location.line)
    match = _COMMENT.search(line) if line else None
    if match is None:
        return False
    codes = match.group("codes")
    return codes is None or finding.rule in {c.strip() for c in codes.split(",")}


@lru_cache(maxsize=256)
def _lines(path: str) -> tuple[str, ...]:
    file = Path(path)
    if not file.is_file() or file.suffix != ".py":
        return ()
    try:
        return tuple(file.read_text(encoding="utf-8", errors="replace").splitlines())
    except OSError:
        return ()


def _line(path: str, number: int) -> str:
    lines = _lines(path)
    return lines[number - 1] if 0 < number <= len(lines) else ""
