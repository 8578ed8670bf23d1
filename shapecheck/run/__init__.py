"""Check the training step a user already has: `shapecheck run train.py` and `with shapecheck.watch(): ...`.

The user's code runs unchanged until its first training step. Then the step is checked with its real batch, real
labels and real loss object, and stopped before any backward pass or optimiser step (unless told to continue):
- PyTorch: the first loss evaluated outside a model (a `torch.nn` loss module, a module named `...Loss`, or a
  `torch.nn.functional` loss), and the last top-level model call before it; what the code did to the output in
  between (`.logits`, `.view(-1, C)`) is learnt from the real tensors and replayed in the trace. A model output
  that carries its own `loss` (Hugging Face models given `labels`) counts as the loss evaluation. A forward pass
  that raises is diagnosed with the batch that caused it.
- Keras: the first batch `fit` or `train_on_batch` receives (arrays, `tf.data`, generators, `PyDataset`), with
  the compiled loss.
- Hugging Face `Trainer`: its first `compute_loss`.
- Scripts written for several devices run as one process (`distributed.py`): world size 1, gloo for NCCL without a
  GPU, the model checked without its DDP/FSDP wrapper.
Hooks are installed when the framework is imported (before the user's code sees it) and removed afterwards.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import os
import runpy
import sys
from collections.abc import Callable
from dataclasses import dataclass, field

from shapecheck.errors import ShapecheckError
from shapecheck.report import Report


class StopTraining(BaseException):
    """Raised at the checked step to stop the user's code before backward and the optimiser step. A
    BaseException, so the user's `except Exception` does not swallow it."""


@dataclass
class Watch:
    """What `watch()` yields: `report` is set once the first training step was checked."""

    stop: bool = True
    check_options: dict = field(default_factory=dict)   # `shapecheck.check`'s options for the checked step
    compute_patches: bool = False                        # SARIF output: the source patches of verified recipes
    report: Report | None = None
    where: str = ""          # the user's line that computed the checked loss
    sites: object = None     # where the user's code created each module (PyTorch)
    busy: bool = False       # a check is running: its own training steps (verification) are not the user's
    on_report: Callable[[Report], None] | None = None   # shows the report the moment the step is checked

    @property
    def waiting(self) -> bool:
        """Still waiting for the user's first training step."""
        return self.report is None and not self.busy

    def check(self, model, **given) -> Report:
        """Check the step the hooks caught: `given` are `shapecheck.check`'s arguments for it."""
        from shapecheck import pipeline
        from shapecheck.python_api import request_for

        self.busy = True
        try:
            request = request_for(model, **given, **self.check_options, compute_patches=self.compute_patches)
            return Report([pipeline.run(request)])
        finally:
            self.busy = False

    def checked(self, report: Report, where: str):
        self.report, self.where = report, where
        for result in report.results:
            if result.trace is not None and where:
                result.trace.notes.insert(0, f"checked the first training step: {where}")
        if self.on_report is not None:   # before the script goes on (`--continue`) or is stopped
            self.on_report(report)
        if self.stop:
            raise StopTraining


@contextlib.contextmanager
def watch(stop: bool = True, **check_options):
    """`with shapecheck.watch() as w: trainer.fit(...)`: the first training step inside is checked and (unless
    `stop=False`) stopped; `w.report` holds the findings, printed as the CLI prints them."""
    state = Watch(stop=stop, check_options=check_options,
                  on_report=lambda report: print(report, file=sys.stderr, flush=True))
    with _hooks(state):
        try:
            yield state
        except StopTraining:
            pass


def run_script(path: str, argv: list[str], stop: bool = True, timeout: float | None = None,
               compute_patches: bool = False, on_report: Callable[[Report], None] | None = None,
               **check_options) -> tuple[Report | None, str]:
    """Run a training script as `python path argv...` until its first training step; (report, note). The report is
    None when the script never reached one (note says why); with `stop=False` the note says how the script ended
    when it raised after the checked step. `on_report` gets the report at the step itself, before the script goes
    on. A script written for `torchrun` runs as its only process."""
    from shapecheck.deadline import TraceTimeout, deadline
    from shapecheck.run.distributed import no_gpu_message, single_process_environment

    if not os.path.isfile(path):
        raise ShapecheckError(f"script `{path}` does not exist")
    state = Watch(stop=stop, check_options=check_options, compute_patches=compute_patches, on_report=on_report)
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [path, *argv]
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    try:
        with single_process_environment(path), _hooks(state), deadline(timeout):
            runpy.run_path(path, run_name="__main__")
    except StopTraining:
        pass
    except TraceTimeout as stopped:
        return None, (f"the script did not reach its first training step within {stopped.seconds:g} s (stopped at "
                      f"{stopped.where}); a slow data pipeline may need a larger --timeout")
    except SystemExit as exit_:
        if state.report is None:
            return None, f"the script exited (status {exit_.code}) before its first training step"
    except Exception as exc:
        text = str(exc).strip().splitlines()
        raised = f"the script raised {type(exc).__name__} " + "{when}" + (f": {text[0]}" if text else "")
        if state.report is None:
            return None, no_gpu_message(exc, path) or raised.format(when="before its first training step")
        return state.report, raised.format(when="after the checked step")
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
    if state.report is None:
        return None, "the script finished without a training step: no loss was computed"
    return state.report, ""


@contextlib.contextmanager
def _hooks(state: Watch):
    """Install each framework's hooks when it is imported (now, if it already is); remove them all at the end."""
    undo: list = []
    installers = {"torch": _torch_hooks, "keras": _keras_hooks, "transformers.trainer": _transformers_hooks}
    finder = _ImportWatcher(installers, state, undo)
    for name in list(installers):
        if name in sys.modules:
            finder.install(name)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for restore in reversed(undo):
            restore()


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """Installs a framework's hooks right after the user's code imports it."""

    def __init__(self, installers: dict, state: Watch, undo: list):
        self.installers, self.state, self.undo = installers, state, undo
        self.pending = set(installers)

    def install(self, name: str):
        if name in self.pending:
            self.pending.discard(name)
            self.undo.append(self.installers[name](self.state))

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.pending:
            return None
        sys.meta_path.remove(self)   # find the real module, then wrap its loader
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        original, watcher = spec.loader.exec_module, self

        def exec_module(module):
            original(module)
            watcher.install(fullname)

        spec.loader.exec_module = exec_module
        return spec


def _torch_hooks(state: Watch):
    from shapecheck.adapters import torch as torch_adapter
    from shapecheck.run import distributed
    from shapecheck.run.torch_spy import TorchSpy

    sites_context = torch_adapter.recording_definition_sites()
    state.sites = sites_context.__enter__()
    removers = [TorchSpy(state).install(), distributed.install()]

    def undo():
        for remove in reversed(removers):
            remove()
        sites_context.__exit__(None, None, None)
    return undo


def _keras_hooks(state: Watch):
    from shapecheck.run.keras_spy import install

    return install(state)


def _transformers_hooks(state: Watch):
    from shapecheck.run.torch_spy import install_trainer

    return install_trainer(state)
