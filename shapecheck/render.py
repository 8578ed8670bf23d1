"""Renderers: the same results as text for people and as JSON for tools (a stable, extend-only contract)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from shapecheck import __version__
from shapecheck.engine import Result
from shapecheck.shapes import fmt


def to_json(results: list[Result]) -> str:
    return json.dumps({"shapecheck": __version__, "results": [_result_json(r) for r in results]}, indent=2)


def _result_json(result: Result) -> dict:
    trace = result.trace
    output = trace.output if trace else None
    return {
        "target": result.target,
        "framework": trace.framework if trace else None,
        "input_shape": list(trace.inputs[0].shape) if trace and trace.inputs else None,
        "input_shapes": [list(t.shape) for t in trace.inputs] if trace else None,
        "output_shape": list(output.shape) if output else None,
        "loss": result.loss.name if result.loss else None,
        "loss_source": result.loss.source if result.loss else None,
        "from_logits": result.loss.from_logits if result.loss else None,
        "labels": result.labels.to_json() if result.labels else None,
        "loss_check": result.loss_check.to_json() if result.loss_check else None,
        "heads": [_head_json(result, head) for head in result.heads],
        "trace_mode": trace.mode if trace else None,
        "notes": trace.notes if trace else [],
        "failure": trace.failure.to_json() if trace and trace.failure else None,
        "layers": [layer.to_json() for layer in trace.layers if layer.name] if trace else [],
        "findings": [f.to_json() for f in result.findings],
        "suppressed": result.suppressed,
        "error": result.error,
    }


def _head_json(result: Result, head) -> dict:
    output = result.trace.outputs.get(head.output) if result.trace and head.output is not None else None
    return {"name": head.name or None, "output": head.output, "output_shape": list(output.shape) if output else None,
            "loss": head.loss.name if head.loss else None, "labels": head.labels.to_json() if head.labels else None,
            "loss_check": head.loss_check.to_json() if head.loss_check else None}


def to_text(results: list[Result], color: bool = False, errors_on_stderr: bool = False) -> str:
    paint = _Painter(color)
    lines: list[str] = []
    for result in results:
        if result.error and errors_on_stderr:
            continue          # the CLI prints it as one line on stderr; the totals still count it
        lines.append(paint.bold(result.target) + _summary(result))
        if len(result.heads) > 1:
            lines += [f"  head `{head.name}`: {'; '.join(_head_parts(result, head))}" for head in result.heads]
        if result.error:
            lines.append(f"  {paint.red('error')}: {result.error['message']}")
        for finding in result.findings:
            severity = paint.red(finding.severity) if finding.severity == "error" else paint.yellow(finding.severity)
            head = f"(output `{finding.head}`) " if finding.head else ""
            lines.append(f"  {severity}[{paint.bold(finding.rule)}] {head}{finding.message}")
            if finding.location:
                lines.append(f"    --> {finding.location.describe()}")
            for fix in finding.fixes:
                lines.append(f"    {paint.cyan('help')}{_mark(fix, paint.green)}: {fix}")
                if fix.placed:
                    lines.append(f"      (the edit goes at {fix.placed})")
        for note in result.trace.notes if result.trace else []:
            lines.append(f"  note: {note}")
        if not result.findings and not result.error:
            lines.append("  no findings")
        lines.append("")
    lines.append(_totals(results))
    return "\n".join(lines)


def _summary(result: Result) -> str:
    trace = result.trace
    if trace is None:
        return ""
    if trace.inputs:
        parts = [f"input {', '.join(fmt(t.shape) for t in trace.inputs)}"]
        parts.append(f"output {fmt(trace.output.shape)}" if trace.output
                     else "forward pass failed" if trace.failure else "output not resolved")
    else:
        parts = ["building the model failed"]
    if len(result.heads) > 1:
        parts[-1:] = [f"{len(result.heads)} outputs, each with its loss"]
    elif result.heads:
        parts += _head_parts(result, result.heads[0], with_output=False)
    return f" ({'; '.join(parts)})"


def _head_parts(result: Result, head, with_output: bool = True) -> list[str]:
    """"output [8, 2]", "loss binary_crossentropy", "labels [8] int64" of one head."""
    parts = []
    output = result.trace.outputs.get(head.output) if result.trace and head.output is not None else None
    if with_output and output is not None:
        parts.append(f"output {fmt(output.shape)}")
    if head.loss:
        origin = f", from the {head.loss.source}" if head.loss.source != "--loss" else ""
        parts.append(f"loss {head.loss.label}{origin}")
    if head.labels:
        stack = f" (the first of {head.labels.per_output}, one per output)" if head.labels.per_output and \
            len(result.heads) == 1 else ""
        parts.append(f"labels {fmt(head.labels.shape)} {head.labels.dtype}{stack}")
    return parts


def _totals(results: list[Result]) -> str:
    errors = sum(f.severity == "error" for r in results for f in r.findings)
    warnings = sum(f.severity == "warning" for r in results for f in r.findings)
    failed = sum(r.error is not None for r in results)
    suppressed = sum(r.suppressed for r in results)
    text = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {_plural(len(results), 'target')}"
    text += f" ({suppressed} suppressed)" if suppressed else ""
    text += f"; {failed} could not be checked" if failed else ""
    return text + _fixable(results)


def _fixable(results: list[Result]) -> str:
    """`; 1 fixable with --fix (2 more with --fix --unsafe-fixes)`, as ruff counts them."""
    findings = [f for r in results for f in r.findings]
    safe = sum(any(fix.applies for fix in f.fixes) for f in findings)
    unsafe = sum(not any(fix.applies for fix in f.fixes) and any(fix.unsafe_applies for fix in f.fixes)
                 for f in findings)
    more = f"{unsafe} more with --fix --unsafe-fixes" if unsafe else ""
    if not safe:
        return f"; {more}" if more else ""
    return f"; {safe} fixable with --fix" + (f" ({more})" if more else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


class _Painter:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def bold(self, text):
        return self._wrap("1", text)

    def red(self, text):
        return self._wrap("1;31", text)

    def yellow(self, text):
        return self._wrap("1;33", text)

    def green(self, text):
        return self._wrap("32", text)

    def cyan(self, text):
        return self._wrap("1;36", text)


def to_github(results: list[Result]) -> str:
    """GitHub Actions workflow commands: one annotation per finding, on the layer's definition line."""
    lines = []
    for result in results:
        if result.error:
            lines.append(f"::error title=shapecheck::{_escape(result.target + ': ' + result.error['message'])}")
        for finding in result.findings:
            level = {"error": "error", "warning": "warning"}.get(finding.severity, "notice")
            place = f"file={finding.location.path},line={finding.location.line}," if finding.location else ""
            title = f"{finding.rule} {finding.name}"
            text = "\n".join([finding.message] + [_help(fix) for fix in finding.fixes])
            lines.append(f"::{level} {place}title={_escape(title, True)}::{_escape(text)}")
    return "\n".join(lines)


def _help(fix) -> str:
    placed = f" (the edit goes at {fix.placed})" if fix.placed else ""
    return f"help{_mark(fix)}: {fix}{placed}"


def _mark(fix, paint=str) -> str:
    """` (verified, safe fix)`: whether it was proven, and whether `--fix` (or `--unsafe-fixes`) applies it."""
    if not fix.verified:
        return ""
    kind = {"safe": ", safe fix", "unsafe": ", unsafe fix"}.get(fix.applicability, "")
    return f" ({paint('verified')}{kind})"


def _escape(text: str, property_value: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if property_value else text


def to_sarif(results: list[Result]) -> str:
    """SARIF 2.1.0: one run, the rule catalogue in tool.driver.rules, results with 1-based physical locations.

    Paths under the working directory are relative to `%SRCROOT%` (what code-scanning uploads resolve against
    the repository); files elsewhere, such as a library's layer definitions, are absolute `file:` URIs. A target
    that could not be loaded is a tool execution notification, and the invocation is marked unsuccessful.
    """
    from shapecheck.rules import load_rules

    catalogue = load_rules()
    codes = list(catalogue)
    root = Path.cwd()
    sarif_results = [_sarif_result(result, index, codes.index(finding.rule), root)
                     for result in results for index, finding in enumerate(result.findings)]
    failures = [{"level": "error", "message": {"text": f"{result.target}: {result.error['message']}"},
                 "descriptor": {"id": result.error["kind"]}} for result in results if result.error]
    notes = [{"level": "note", "message": {"text": f"{result.target}: {note}"}}   # what was not checked
             for result in results if result.trace for note in result.trace.notes]
    run = {"tool": {"driver": {"name": "shapecheck", "version": __version__,
                               "informationUri": "https://pypi.org/project/shapecheck-dl/",
                               "rules": [_sarif_rule(code, rule) for code, rule in catalogue.items()]}},
           "invocations": [{"executionSuccessful": not failures, "toolExecutionNotifications": failures + notes}],
           "originalUriBaseIds": {"%SRCROOT%": {"uri": root.as_uri().rstrip("/") + "/"}},
           "results": sarif_results}
    log = {"$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0", "runs": [run]}
    return json.dumps(log, indent=2)


def _sarif_rule(code: str, rule) -> dict:
    from shapecheck.docs import doc_path, doc_section

    path = doc_path(code)
    doc = path.read_text(encoding="utf-8") if path else rule.summary
    return {"id": code, "name": rule.name, "shortDescription": {"text": rule.summary},
            "fullDescription": {"text": doc_section(doc, "What it does") or rule.summary},
            "help": {"text": doc, "markdown": doc},
            "defaultConfiguration": {"level": _sarif_level(rule.severity)},
            "properties": {"category": rule.category}}


def _sarif_result(result: Result, index: int, rule_index: int, root: Path) -> dict:
    finding = result.findings[index]
    entry = {"ruleId": finding.rule, "ruleIndex": rule_index, "level": _sarif_level(finding.severity),
             "message": {"text": "\n".join([finding.message] + [_help(fix) for fix in finding.fixes])},
             "properties": {"target": result.target, "layer": finding.layer, "category": finding.category}}
    fixes = _sarif_fixes(finding, result.patches.get(index, []), root)
    if fixes:
        entry["fixes"] = fixes
    if finding.location:
        entry["locations"] = [{"physicalLocation": _physical(finding.location, root)}]
        if finding.location.defined_in:
            entry["relatedLocations"] = [{"id": 1, "message": {"text": f"`{finding.layer}` is defined here"},
                                          "physicalLocation": _physical(finding.location.defined_in, root)}]
    return entry


def _sarif_fixes(finding, patches: list, root: Path) -> list[dict]:
    """The verified recipe as a SARIF fix: the pipeline's patch of the user's own source (never library code)."""
    from shapecheck.trace import Location

    applied = next((fix for fix in finding.fixes if fix.applies or fix.unsafe_applies), None)
    if applied is None:
        return []
    changes = [{"artifactLocation": _artifact(Location(p.shown, 1, str(p.path)), root),
                "replacements": p.replacements()} for p in patches]
    return [{"description": {"text": applied.title}, "artifactChanges": changes,
             "properties": {"applicability": applied.applicability}}] if changes else []


def _physical(location, root: Path) -> dict:
    return {"artifactLocation": _artifact(location, root), "region": {"startLine": max(location.line, 1)}}


def _artifact(location, root: Path) -> dict:
    path = Path(location.file or location.path)
    absolute = path if path.is_absolute() else root / path
    if absolute.is_relative_to(root):
        return {"uri": quote(absolute.relative_to(root).as_posix()), "uriBaseId": "%SRCROOT%"}
    return {"uri": absolute.as_uri()}


def _sarif_level(severity: str) -> str:
    return {"error": "error", "warning": "warning"}.get(severity, "note")


def trace_table(trace) -> str:
    """The per-layer shape table (like torchinfo), the failing layer marked."""
    rows = [("layer", "type", "input", "output", "defined at")]
    failed = trace.failure.layer if trace.failure else None
    for layer in trace.layers:
        if not layer.name or not (layer.calls or layer.name == failed):
            continue
        inputs = " ".join(fmt(t.shape) for t in layer.inputs) or "-"
        output = "FAILED HERE" if layer.name == failed else (fmt(layer.output.shape) if layer.output else "-")
        defined = layer.source and (layer.source.defined_in or layer.source)   # the library's line says more here
        rows.append((layer.name, layer.type, inputs, output, str(defined or "")))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4] for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    if trace.failure:
        lines.append(f"\nforward pass failed in `{failed}`: {trace.failure.exception}: {trace.failure.message}")
    elif trace.output:
        lines.append(f"\noutput {fmt(trace.output.shape)} ({trace.mode} trace)")
    return "\n".join(line.rstrip() for line in lines)
