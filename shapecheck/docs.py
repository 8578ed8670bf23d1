"""Rule documentation: one Markdown file per rule in the `rules/` catalogue, shipped inside the wheel."""

from __future__ import annotations

from pathlib import Path

from shapecheck.errors import ShapecheckError

_PACKAGE = Path(__file__).resolve().parent
# Installed wheels carry the catalogue as shapecheck/ruledocs; a source checkout has it at the repository root.
_DOC_DIRS = (_PACKAGE / "ruledocs", _PACKAGE.parent / "rules")


def doc_path(code: str) -> Path | None:
    for folder in _DOC_DIRS:
        matches = sorted(folder.glob(f"{code.upper()}-*.md")) if folder.is_dir() else []
        if matches:
            return matches[0]
    return None


def rule_doc(code: str) -> str:
    from shapecheck.rules import load_rules

    rules = load_rules()
    code = code.upper()
    if code not in rules:
        raise ShapecheckError(f"unknown rule `{code}`; `shapecheck rules` lists them")
    path = doc_path(code)
    if path is None:
        raise ShapecheckError(f"rule {code} has no documentation file (rules/{code}-{rules[code].name}.md)")
    return path.read_text(encoding="utf-8").rstrip()


def doc_section(doc: str, heading: str) -> str:
    """The text under a `## heading` of a rule doc, up to the next heading or blank line."""
    lines = doc.splitlines()
    try:
        start = lines.index(f"## {heading}") + 1
    except ValueError:
        return ""
    paragraph = []
    for line in lines[start:]:
        if line.startswith("#") or (not line.strip() and paragraph):
            break
        paragraph.append(line.strip())
    return " ".join(part for part in paragraph if part)
