"""What the Python API returns: the findings of one or more checks, printed as the CLI prints them in a terminal
and as a table with the layer list in Jupyter."""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from shapecheck.engine import Result


class ShapeMismatchError(AssertionError):
    """Raised by `Report.raise_for_errors()`: the report's text is the message (an AssertionError, so test
    frameworks show it as a failed check)."""


@dataclass
class Report:
    results: list[Result] = field(default_factory=list)

    @property
    def findings(self):
        return [finding for result in self.results for finding in result.findings]

    @property
    def errors(self):
        return [finding for finding in self.findings if finding.severity == "error"]

    @property
    def notes(self) -> list[str]:
        """What the checks could not look at (no loss, labels without values, outputs left unpaired), and how."""
        return [note for result in self.results if result.trace for note in result.trace.notes]

    @property
    def load_errors(self) -> list[str]:
        return [f"{r.target}: {r.error['message']}" for r in self.results if r.error]

    @property
    def ok(self) -> bool:
        """No error-severity finding, and every model could be checked."""
        return not self.errors and not self.load_errors

    def raise_for_errors(self) -> Report:
        if not self.ok:
            raise ShapeMismatchError(str(self))
        return self

    def to_json(self) -> str:
        from shapecheck import render

        return render.to_json(self.results)

    def __str__(self) -> str:
        from shapecheck import render

        return render.to_text(self.results)

    def __repr__(self) -> str:
        rules = ", ".join(dict.fromkeys(f.rule for f in self.findings))
        state = "ok" if self.ok else "errors"
        return f"<shapecheck.Report {state}: {len(self.errors)} error(s), {len(self.findings)} finding(s)" + \
            (f" ({rules})" if rules else "") + ">"

    def _repr_html_(self) -> str:
        return "".join(_result_html(result) for result in self.results)


def _result_html(result: Result) -> str:
    escape = html.escape
    parts = [f"<div><b>{escape(result.target)}</b>"]
    if result.error:
        parts.append(f"<p style='color:#b00'>error: {escape(result.error['message'])}</p>")
    if result.findings:
        rows = []
        for finding in result.findings:
            colour = "#b00" if finding.severity == "error" else "#a60"
            fixes = "<br>".join(f"{'&#10003; ' if fix.verified else ''}{escape(str(fix))}" for fix in finding.fixes)
            rows.append(f"<tr><td style='color:{colour}'>{finding.severity}</td><td>{finding.rule}</td>"
                        f"<td>{escape(finding.layer or '')}</td><td>{escape(finding.message)}</td><td>{fixes}</td></tr>")
        parts.append("<table><tr><th>severity</th><th>rule</th><th>layer</th><th>finding</th>"
                     "<th>fix (&#10003; verified)</th></tr>" + "".join(rows) + "</table>")
    elif not result.error:
        parts.append("<p>no findings</p>")
    if result.trace is not None and result.trace.layers:
        rows = [f"<tr><td>{escape(layer.name)}</td><td>{escape(layer.type)}</td>"
                f"<td>{escape(', '.join(str(list(t.shape)) for t in layer.inputs))}</td>"
                f"<td>{escape(str(list(layer.output.shape)) if layer.output else '')}</td></tr>"
                for layer in result.trace.layers if layer.name and layer.is_leaf]
        parts.append("<details><summary>layers</summary><table><tr><th>layer</th><th>type</th><th>input</th>"
                     "<th>output</th></tr>" + "".join(rows) + "</table></details>")
    return "".join(parts) + "</div>"
