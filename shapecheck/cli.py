"""The `shapecheck` command."""

from __future__ import annotations

import dataclasses
import os
import sys

import click

from shapecheck import __version__
from shapecheck.errors import ShapecheckError

EXIT_CLEAN, EXIT_FINDINGS, EXIT_USAGE = 0, 1, 2


class _OneLineErrors(click.Group):
    """Usage errors as one line on stderr, exit code 2, like every other error (click would add a usage block)."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:   # bare `shapecheck`: the help, as click gives it
            click.echo(exc.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            command = f" {exc.ctx.command.name}" if exc.ctx is not None and exc.ctx.command is not self else ""
            click.echo(f"shapecheck{command}: error: {exc.format_message()} (see shapecheck{command} --help)", err=True)
            sys.exit(EXIT_USAGE)
        except click.ClickException as exc:
            click.echo(f"shapecheck: error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            sys.exit(EXIT_USAGE)
        sys.exit(code if isinstance(code, int) else EXIT_CLEAN)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="shapecheck")
def main():
    """Find shape, loss and label mismatches in deep-learning models before training."""
    from shapecheck.adapters import quiet_frameworks

    quiet_frameworks()   # before a user's module imports tensorflow


class _SizesBySpaces(click.Command):
    """Says `--input 4 3 128 128` is a shape split by spaces before click reads it as an input and three targets
    (the order of the arguments tells it, and only the raw arguments keep their order)."""

    def parse_args(self, ctx, args):
        from shapecheck import mistakes

        try:
            mistakes.reject_stray_sizes(args)
        except ShapecheckError as exc:
            raise click.UsageError(str(exc), ctx) from exc
        return super().parse_args(ctx, args)


@main.command("check", cls=_SizesBySpaces)
@click.argument("targets", nargs=-1)
@click.option("--input", "inputs", multiple=True, metavar="SHAPE[:DTYPE]",
              help="Dummy batch shape, e.g. 16,3,224,224 or 8,128:int64; repeat for several inputs.")
@click.option("--input-file", type=click.Path(dir_okay=False),
              help="Input values the forward reads (lengths, masks, ids): .npz (arr_0, arr_1, ... positional, other "
                   "names keyword) or .pt (a tensor, tuple or dict).")
@click.option("--loss", multiple=True, metavar="[OUTPUT=]NAME",
              help="The training loss: BCEWithLogitsLoss, CrossEntropyLoss, MSELoss, ...; for a model with several "
                   "outputs, one per output: --loss age=mse --loss gender=binary_crossentropy.")
@click.option("--labels", "labels_spec", multiple=True, metavar="[OUTPUT=]SHAPE[:DTYPE]",
              help="Label tensor shape, e.g. 16 or 16,1:float32; per output: --labels gender=16,1.")
@click.option("--labels-file", multiple=True, metavar="[OUTPUT=]FILE",
              help="Real labels (.npy, .npz, .pt): enables value rules. An .npz of arrays named by output holds "
                   "the labels of each output.")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True)
@click.option("--from-logits/--no-from-logits", "from_logits", default=None,
              help="Keras losses: override the `from_logits` of the loss (default: the compile config's, else off).")
@click.option("--trust", is_flag=True, help="Run code that model files hold: Keras Lambda layers, pickled PyTorch "
              "modules (.pt/.pth). Only for files you trust.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop a trace that runs longer and say where it was (default 60; 0: no limit).")
@click.option("--select", multiple=True, metavar="CODE", help="Only these rules (code prefixes, e.g. SC1).")
@click.option("--ignore", multiple=True, metavar="CODE", help="Skip these rules (code prefixes).")
@click.option("--verify-fixes/--no-verify-fixes", default=True, show_default=True,
              help="Prove each fix recipe: apply it to an in-memory copy, re-check, and run one training step.")
@click.option("--fix-diff", is_flag=True, help="Print the verified fixes as a unified diff of your own source files "
              "(never library code) instead of the report.")
@click.option("--fix", "apply_fixes", is_flag=True, help="Write the verified safe fixes into your own source files "
              "(refused for files outside the project or with uncommitted changes), then check again; a fix after "
              "which a new error appears is reverted.")
@click.option("--unsafe-fixes", is_flag=True, help="With --fix or --fix-diff, also the verified fixes that change what "
              "the model computes (an activation dropped, a layer added).")
@click.option("--audit/--no-audit", default=None,
              help="Measure the training signal on a tiny real batch (SC4xx): gradients reaching each layer, the "
              "output's dependence on the input, the loss at initialisation (default: on, or the configuration's "
              "`audit`); --no-audit: static checks only.")
@click.option("--changed-files", is_flag=True, help="TARGETS are files that changed (pre-commit's hooks pass them): "
              "a .py file that defines no configured target is skipped instead of being an error.")
def check_command(targets, inputs, input_file, loss, labels_spec, labels_file, output_format, from_logits, trust,
                  timeout, select, ignore, verify_fixes, fix_diff, apply_fixes, unsafe_fixes, audit, changed_files):
    """Trace TARGETS and check them against the loss and labels.

    TARGET is path/to/file.py:factory, package.module:factory, a TorchScript archive, a torch.export .pt2 file,
    a Keras .keras/.h5 file (its compiled loss is used unless --loss is given) or an ONNX .onnx graph. Without
    TARGET, the targets configured in pyproject.toml ([[tool.shapecheck.targets]]) are checked; a .py file
    stands for the configured targets defined in it; one with none is an error that names the factories in the
    file (skipped with --changed-files, as pre-commit's hooks run). A package.module target is imported with the current
    folder on the import path, as `python -m` has it. Command-line options override the configuration.
    Exit status: 0 no errors, 1 findings of severity error, 2 usage error or a target that could not be loaded.
    """
    from shapecheck import config, mistakes, render
    from shapecheck.request import Flags, plan

    if (fix_diff or apply_fixes) and not verify_fixes:
        _usage_error("--fix-diff and --fix apply verified fixes only: drop --no-verify-fixes")
    if unsafe_fixes and not (fix_diff or apply_fixes):
        _usage_error("--unsafe-fixes goes with --fix or --fix-diff")
    flags = Flags(inputs=inputs, input_file=input_file, loss=loss, labels=labels_spec, labels_file=labels_file,
                  from_logits=from_logits, select=_codes(select), ignore=_codes(ignore), trust=trust, timeout=timeout,
                  verify_fixes=verify_fixes, compute_patches=output_format == "sarif" and not (fix_diff or apply_fixes),
                  audit=audit, changed_files=changed_files)
    planned = _guard(lambda: plan(list(targets), flags, config.load()))
    results = _guard(lambda: _check_with_progress(planned))
    _guard(lambda: mistakes.reject_invocation_mistakes(planned, results))
    renderers = {"json": render.to_json, "sarif": render.to_sarif, "github": render.to_github,
                 "text": lambda r: render.to_text(r, color=_use_color(), errors_on_stderr=True)}
    allowed = ("safe", "unsafe") if unsafe_fixes else ("safe",)
    # the errors an unsafe fix would take, for the hint once --fix has written the safe ones
    unsafe = {(r.target, f.rule, f.layer) for r in results for f in r.findings
              if any(fix.unsafe_applies for fix in f.fixes)}
    if fix_diff:
        _show_fixes(results, allowed)
    elif apply_fixes:
        results = _apply_fixes(results, allowed, lambda: _check_with_progress(
            _guard(lambda: plan(list(targets), dataclasses.replace(flags, verify_fixes=False), config.load()))))
    else:
        click.echo(renderers[output_format](results))
    for result in results:
        if result.error:
            click.echo(f"shapecheck: {result.target}: {result.error['message']}", err=True)
    if any(r.error for r in results):
        sys.exit(EXIT_USAGE)
    remaining = [(r.target, f.rule, f.layer) for r in results for f in r.findings if f.severity == "error"]
    if apply_fixes and remaining:
        hidden = sum(key in unsafe for key in remaining)
        more = f" ({hidden} with an unsafe fix: --fix --unsafe-fixes)" if hidden and not unsafe_fixes else ""
        click.echo(f"shapecheck: {len(remaining)} error{'s' if len(remaining) != 1 else ''} left to fix{more}",
                   err=True)
    sys.exit(EXIT_FINDINGS if remaining else EXIT_CLEAN)


@main.command("run", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("script")
@click.argument("script_args", nargs=-1, type=click.UNPROCESSED)
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True)
@click.option("--continue", "keep_going", is_flag=True, help="Let the script go on training after the report.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS", default=600, show_default=True,
              help="Stop a script that has not reached its first training step by then (0: no limit).")
@click.option("--select", multiple=True, metavar="CODE", help="Only these rules (code prefixes, e.g. SC1).")
@click.option("--ignore", multiple=True, metavar="CODE", help="Skip these rules (code prefixes).")
@click.option("--verify-fixes/--no-verify-fixes", default=True, show_default=True,
              help="Prove each fix recipe: apply it to an in-memory copy, re-check, and run one training step.")
@click.option("--audit/--no-audit", default=None,
              help="Measure the training signal on a tiny real batch (SC4xx): gradients reaching each layer, the "
              "output's dependence on the input, the loss at initialisation (default: on, or the configuration's "
              "`audit`); --no-audit: static checks only.")
def run_command(script, script_args, output_format, keep_going, timeout, select, ignore, verify_fixes, audit):
    """Run SCRIPT [ARGS...] until its first training step and check that step.

    The script runs as `python SCRIPT ARGS...` would, up to its first loss evaluation (PyTorch), `fit` or
    `train_on_batch` batch (Keras) or `Trainer.compute_loss` (Hugging Face); that step is checked with its real
    batch, labels and loss object, and the script is stopped before backward and the optimiser step (--continue
    lets it go on). Data it downloads or a GPU it needs are its own business. Exit status as `check`.
    """
    from shapecheck import mistakes, render
    from shapecheck.run import run_script

    _guard(lambda: mistakes.reject_options_before_script(script, script_args))
    renderers = {"json": render.to_json, "sarif": render.to_sarif, "github": render.to_github,
                 "text": lambda r: render.to_text(r, color=_use_color(), errors_on_stderr=True)}

    def show(checked):   # at the step itself: with --continue, before the script trains on
        click.echo(renderers[output_format](checked.results))

    report, note = _guard(lambda: run_script(script, list(script_args), stop=not keep_going,
                                             timeout=timeout or None, compute_patches=output_format == "sarif",
                                             on_report=show, select=_codes(select) or None,
                                             ignore=_codes(ignore), verify_fixes=verify_fixes,
                                             audit=audit is not False))
    if report is None:
        _usage_error(f"{script}: {note}")
    for message in report.load_errors + ([f"{script}: {note}"] if note else []):
        click.echo(f"shapecheck: {message}", err=True)
    sys.exit(EXIT_USAGE if report.load_errors else EXIT_FINDINGS if report.errors else EXIT_CLEAN)


@main.command("trace", cls=_SizesBySpaces)
@click.argument("target")
@click.option("--input", "inputs", multiple=True, metavar="SHAPE[:DTYPE]", help="Dummy batch shape (repeatable).")
@click.option("--input-file", type=click.Path(dir_okay=False), help="Input values the forward reads (.npz, .pt).")
@click.option("--trust", is_flag=True, help="Run code that model files hold (Keras Lambda layers, pickled "
              "PyTorch modules). Only for files you trust.")
@click.option("--timeout", type=click.FloatRange(min=0), metavar="SECONDS",
              help="Stop a trace that runs longer and say where it was (default 60; 0: no limit).")
def trace_command(target, inputs, input_file, trust, timeout):
    """Print TARGET's per-layer shape table, the layer where the forward pass failed marked.

    Exit status: 0 the forward pass ran, 1 it failed, 2 usage error or a target that could not be loaded."""
    from shapecheck import config, mistakes, render
    from shapecheck.request import Flags, plan
    from shapecheck.targets import no_factory

    flags = Flags(inputs=inputs, input_file=input_file, trust=trust, timeout=timeout)
    planned = _guard(lambda: plan([target], flags, config.load()))
    if not planned:   # a .py file without `:factory` that holds no configured target
        _usage_error(str(no_factory(target)))
    if len(planned) > 1:
        _usage_error(f"`{target}` holds {len(planned)} configured targets: trace one of "
                     f"{', '.join(r.target for r in planned)}")
    [result] = _guard(lambda: _check_with_progress(planned))
    if result.error:
        click.echo(f"shapecheck: error: {result.error['message']}", err=True)
        sys.exit(EXIT_USAGE)
    _guard(lambda: mistakes.reject_invocation_mistakes(planned, [result]))
    click.echo(render.trace_table(result.trace))
    if result.trace.failure:
        failure = result.trace.failure
        where = f" in `{failure.layer}`" if failure.layer else ""
        click.echo(f"shapecheck: {target}: the forward pass failed{where}: {failure.exception}: {failure.message}",
                   err=True)
        sys.exit(EXIT_FINDINGS)


@main.command("rules")
def rules_command():
    """List the rule catalogue."""
    from shapecheck.rules import load_rules

    for code, rule in load_rules().items():
        click.echo(f"{code}  {rule.name:<34} {rule.category:<18} {rule.summary}")


@main.command("rule")
@click.argument("code")
def rule_command(code):
    """Print the documentation of rule CODE (e.g. SC101)."""
    from shapecheck.docs import rule_doc

    click.echo(_guard(lambda: rule_doc(code)))


def _show_fixes(results: list, allowed: tuple[str, ...]) -> None:
    """--fix-diff: the patch the verified fixes of an applicability in `allowed` make, as a unified diff."""
    from shapecheck import patch

    patches = _guard(lambda: patch.plan(results, allowed))
    click.echo("".join(p.diff for p in patches), nl=False)
    _fix_notes(results, patches, allowed)


def _apply_fixes(results: list, allowed: tuple[str, ...], recheck) -> list:
    """--fix: write the patches, then check again (`recheck`, without verification) for what remains. A patch
    after which an error appears that was not there before is reverted, with a message. Returns the results the
    exit code answers to: the re-check's, or the first check's when nothing was written or all was reverted."""
    from shapecheck import patch, targets

    patches = _guard(lambda: patch.plan(results, allowed))
    _fix_notes(results, patches, allowed)
    if not patches:
        return results
    written = _guard(lambda: patch.write(patches))
    targets.forget_user_modules()   # the re-check imports the patched source, not the modules loaded before
    after = recheck()
    # a recipe with a label or loss step leaves its layer's error to the training code: not new, only moved on
    pending = {(r.target, f.layer) for r in results for f in r.findings
               if any(patch.in_training_code(fix) for fix in patch.applied_chain(r, f, allowed))}
    new = sorted(key for key in _error_keys(after) - _error_keys(results) if (key[0], key[2]) not in pending)
    if new:
        patch.revert(patches)
        targets.forget_user_modules()
        click.echo(f"shapecheck: reverted the fixes in {', '.join(p.shown for p in patches)}: after them the check "
                   f"reports {', '.join(f'{rule} ({layer})' if layer else rule for _, rule, layer in new)}, which "
                   "it did not before", err=True)
        return results
    for shown, count in written:
        click.echo(f"shapecheck: fixed {count} finding{'s' if count != 1 else ''} in {shown}", err=True)
    return after


def _fix_notes(results: list, patches: list, allowed: tuple[str, ...]) -> None:
    from shapecheck import patch

    if not patches and any(f.fixes for r in results for f in r.findings):
        hidden = "safe" in allowed and "unsafe" not in allowed and patch.plan(results, ("safe", "unsafe"))
        more = " (some unsafe ones do: add --unsafe-fixes)" if hidden else ""
        click.echo(f"shapecheck: no verified fix maps onto your own source files{more}", err=True)
    for note in patch.outside_source(results, allowed) if patches else ():
        click.echo(f"shapecheck: also change your training code: {note}", err=True)


def _error_keys(results: list) -> set:
    """What a check reports as errors: (target, rule, layer) of each error finding; a target that could not be
    checked counts as an error of its own."""
    return {(r.target, f.rule, f.layer) for r in results for f in r.findings if f.severity == "error"} | \
        {(r.target, "load", r.error["message"]) for r in results if r.error}


def _usage_error(message: str):
    click.echo(f"shapecheck: error: {message}", err=True)
    sys.exit(EXIT_USAGE)


def _check_with_progress(planned: list) -> list:
    """Check every planned request in this one process (one framework import for all), showing on a terminal
    which target and stage a long check is in."""
    from shapecheck import pipeline, progress

    results = []
    with progress.reporting(len(planned)) as shown:
        for index, request in enumerate(planned, 1):
            if shown:
                shown.start_target(index, request.target)
            results.append(pipeline.run(request))
    return results


def _guard(action):
    """Run an action; a user-fixable problem becomes one line on stderr and exit code 2, never a traceback."""
    try:
        return action()
    except ShapecheckError as exc:
        click.echo(f"shapecheck: error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # a bug in shapecheck: still one line, with a way to get the traceback
        if os.environ.get("SHAPECHECK_DEBUG"):
            raise
        first = next((line for line in str(exc).splitlines() if line.strip()), "")
        click.echo(f"shapecheck: internal error: {type(exc).__name__}: {first} (set SHAPECHECK_DEBUG=1 for the "
                   "traceback)", err=True)
        sys.exit(EXIT_USAGE)


def _use_color() -> bool:
    return sys.stdout.isatty() and "NO_COLOR" not in os.environ


def _codes(values: tuple[str, ...]) -> list[str]:
    """`--ignore SC101,SC100 --ignore SC3` -> the three prefixes, as ruff reads them."""
    return [code.strip().upper() for value in values for code in value.split(",") if code.strip()]
