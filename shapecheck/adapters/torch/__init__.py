"""PyTorch adapter: load TorchScript and torch.export files, trace modules, probe for batch mixing."""

from __future__ import annotations

import contextlib
import re
import weakref
from collections.abc import Mapping

from shapecheck.adapters import keep_triton_out_after_tensorflow

keep_triton_out_after_tensorflow()

import torch  # noqa: E402
from torch import nn  # noqa: E402

from shapecheck.adapters.sources import user_frame  # noqa: E402
from shapecheck.adapters.torch.audit import audit  # noqa: E402, F401 (the training-signal audit)
from shapecheck.adapters.torch.batchflow import unproven_op  # noqa: E402
from shapecheck.adapters.torch.edit import edited, train_step  # noqa: E402, F401 (recipe verification)
from shapecheck.adapters.torch.graph import is_exported, run_graph  # noqa: E402
from shapecheck.adapters.torch.loss import check_loss  # noqa: E402, F401 (the adapter's loss oracle)
from shapecheck.adapters.torch.probe import MAX_PARAMETERS, probe_batch_mixing  # noqa: E402
from shapecheck.adapters.torch.tracer import TORCH_DIR, fake_tensor_mode, model_device, run_once  # noqa: E402
from shapecheck.adapters.torch.weights import building_without_weights, materialize  # noqa: E402, F401
from shapecheck.errors import ShapecheckError  # noqa: E402
from shapecheck.losses import LossContract  # noqa: E402
from shapecheck.oracle import first_line  # noqa: E402
from shapecheck.shapes import TensorMeta  # noqa: E402
from shapecheck.trace import Trace, traced_at_two_batches  # noqa: E402

FRAMEWORK = "torch"
EDITABLE = frozenset({"layer", "input", "output", "model"})   # `Edit.on` values `edited` applies
TRAINS = True
TAKES_VALUES = True   # trace and train_step take input values (`example`) and the user's `post` code


def prepare() -> None:
    fake_tensor_mode()


def owns(obj) -> bool:
    return isinstance(obj, nn.Module)


@contextlib.contextmanager
def recording_definition_sites():
    """While a factory runs, remember the line that created each module (`self.fc = nn.Linear(...)`)."""
    sites: Mapping = weakref.WeakKeyDictionary()
    original = nn.Module.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        if self not in sites:
            location = user_frame((TORCH_DIR,), skip_self=self, with_callers=True)
            if location is not None:
                sites[self] = location

    nn.Module.__init__ = init
    try:
        yield sites
    finally:
        nn.Module.__init__ = original


def declared_inputs(model: nn.Module, batch: int) -> list[TensorMeta] | None:
    """A module declares no input shape: its forward takes whatever it is given."""
    return None


def compiled_losses(model: nn.Module, from_logits: bool | None) -> dict[str, LossContract]:
    """A module carries no loss: the training code picks one."""
    return {}


def load_file(path: str, trust: bool = False) -> nn.Module:
    """A `torch.export` program (`.pt2`), a TorchScript archive, or (with `trust`) a pickled module. Nothing in a
    file runs unless the user trusts it: pickles are read with `weights_only`, which executes no code."""
    with quiet_loading():
        if path.endswith(".pt2"):
            return _load_or_explain(path, "a torch.export program", lambda: torch.export.load(path).module())
        if _is_torchscript(path):
            return _load_or_explain(path, "a TorchScript archive", lambda: torch.jit.load(path, map_location="cpu"))
        return _load_pickle(path, trust)


def _load_or_explain(path: str, kind: str, load):
    try:
        return load()
    except Exception as exc:
        raise ShapecheckError(f"cannot load `{path}` as {kind}: {_first_line(exc)}", kind="load") from exc


def _is_torchscript(path: str) -> bool:
    """TorchScript archives are zip files holding compiled code (`code/`) and `constants.pkl`; `torch.save` files
    hold only `data.pkl` and tensors."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("/constants.pkl") or "/code/" in name for name in archive.namelist())
    except Exception:   # not a readable zip (damaged names included): torch.load says what it is
        return False


def _load_pickle(path: str, trust: bool) -> nn.Module:
    """`torch.save` output: read with `weights_only` (no code runs); a pickled module needs --trust."""
    import pickle

    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found is None:   # not a pickle at all: say what the unpickler met, not PyTorch's advice to unpickle fully
            cause = re.search(r"Unpickler error:\s*(\S.*)", str(exc))
            reason = f"not a PyTorch file (unpickling met: {cause.group(1).strip()})" if cause else _first_line(exc)
            raise ShapecheckError(f"cannot load `{path}`: {reason}", kind="load") from exc
        if not trust:
            raise ShapecheckError(f"`{path}` holds a pickled `{found.group(1)}`: loading it runs code from the file; "
                                  "if you trust the file, pass --trust (pytest: --shapecheck-trust)", kind="load") from exc
        value = _load_or_explain(path, "a pickled model",
                                 lambda: torch.load(path, map_location="cpu", weights_only=False))
    except Exception as exc:
        raise ShapecheckError(f"cannot load `{path}` as a PyTorch file: {_first_line(exc)}", kind="load") from exc
    if isinstance(value, nn.Module):
        return value
    if isinstance(value, Mapping) and any(isinstance(v, torch.Tensor) for v in value.values()):
        count = sum(isinstance(v, torch.Tensor) for v in value.values())
        raise ShapecheckError(f"`{path}` holds weights (a state dict of {count} tensors), not a model: check the "
                              "factory that builds the model instead (`path/to/file.py:build`)", kind="load")
    raise ShapecheckError(f"`{path}` holds a {type(value).__name__}, not a model", kind="load")


@contextlib.contextmanager
def quiet_loading():
    """PyTorch's loaders log tracebacks and deprecation warnings on their own; shapecheck reports what matters in
    one line, so neither reaches the terminal while a file loads."""
    import logging
    import warnings

    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


def _first_line(exc: BaseException) -> str:
    """The first sentence of the first line: PyTorch's messages go on with advice that does not apply here."""
    return first_line(exc).split(". ")[0].rstrip(".")


def _has_lazy_modules(model: nn.Module) -> bool:
    from torch.nn.modules.lazy import LazyModuleMixin

    return any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules())


def _materialize_lazy_modules(model: nn.Module, specs: list[TensorMeta]) -> str | None:
    """`nn.LazyLinear` and friends create their weights on the first real call; under fake tensors they would
    become fake. One real pass of two zero samples in eval mode sizes them first, as the user's first batch would."""
    from torch.nn.modules.lazy import LazyModuleMixin

    if not any(isinstance(m, LazyModuleMixin) and m.has_uninitialized_params() for m in model.modules()):
        return None
    from shapecheck.adapters.torch.tracer import make_inputs, preserved

    with preserved(model), torch.no_grad():
        model.eval()
        try:
            model(*[torch.zeros_like(t) for t in make_inputs(specs, 2, real=True)])
        except Exception:   # the traced run reports what is wrong
            return None
    return "lazy modules were sized by one real forward pass of two zero samples"


def trace(model: nn.Module, specs: list[TensorMeta], target: str, sites: Mapping | None = None,
          example=None, post=None) -> Trace:
    """Trace at the requested batch and at batch + 1 (an output that does not follow the batch shows up).
    `example` holds input values the forward reads (lengths, masks); they are fed as they are."""
    sites = sites if sites is not None else {}
    batch = example.batch if example is not None else specs[0].shape[0]
    if is_exported(model):
        return traced_at_two_batches(lambda size: run_graph(model, specs, size, target), batch)
    notes = []
    if (example is not None or _has_lazy_modules(model)) and not materialize(model):
        notes.append("the model is too large to run with real weights: example values and lazy modules are "
                     "traced symbolically")
    notes.append(_materialize_lazy_modules(model, specs) if example is None else None)
    primary = run_once(model, specs, batch, target, sites, example=example, post=post)
    needs_values = primary.failure is not None and primary.failure.needs_values
    if needs_values and not materialize(model):
        notes.append(f"the forward reads tensor values, and the model is too large to run with real weights "
                     f"(limit {MAX_PARAMETERS // 10**6}M parameters): the failure is reported as traced")
    primary.notes.extend(note for note in notes if note)
    on_meta = model_device(model).type == "meta"
    real = needs_values and not on_meta
    if real:
        primary = run_once(model, specs, batch, target, sites, real=True, example=example, post=post)
        values = "the given input values" if example is not None else "random data"
        primary.notes.append(f"traced with {values} at batch {batch}: forward reads tensor values (data-dependent "
                             "control flow, `.item()`, `.numpy()`), which a symbolic trace cannot do")
        if primary.failure is not None and example is None:
            primary.failure.random_values = True
    primary.alternate = run_once(model, specs, batch + 1, target, sites, real=real, example=example, post=post)
    if isinstance(model, torch.jit.ScriptModule):
        primary.notes.append("TorchScript archive: layers take no hooks, so only the output shape is recorded")
    if primary.failure is None:
        _count_eval_mode_calls(primary, model, specs, target, sites, example, real, post)
        if unproven_op(primary, primary.alternate, batch) is not None:   # else no sample can reach another
            materialize(model)   # the probe runs the model for real; too large a model is skipped by it, noted
            primary.probe, note = probe_batch_mixing(model, specs, example, _layer_batch_axes(primary))
            if note:
                primary.notes.append(note)
    return primary


def _layer_batch_axes(primary: Trace) -> dict[str, tuple[int, int]]:
    """Per module, the axis of its input and of its output that holds the batch: the one axis whose size changes
    between the traces at N and N + 1 (not assumed to be axis 0: after a transpose it is not)."""
    from shapecheck.shapes import batch_axis

    others = {layer.name: layer for layer in primary.alternate.layers} if primary.alternate else {}
    axes = {}
    for layer in primary.layers:
        other = others.get(layer.name)
        if other is None or not (layer.inputs and other.inputs and layer.output and other.output):
            continue
        found = batch_axis(layer.inputs[0].shape, other.inputs[0].shape), batch_axis(layer.output.shape,
                                                                                     other.output.shape)
        if None not in found:
            axes[layer.name] = found
    return axes


def _count_eval_mode_calls(primary: Trace, model: nn.Module, specs, target, sites, example, real: bool, post=None):
    """A layer is unused only if it is unused in every mode: training mode may skip layers at random (LayerDrop)
    or on purpose (auxiliary heads), so weighted layers that did not run get a second chance in eval mode."""
    idle = [layer for layer in primary.layers if layer.params and not layer.calls and not layer.weights_used]
    if not idle:
        return
    evaluated = run_once(model, specs, primary.batch, target, sites, real=real, example=example, training=False,
                         post=post)
    ran = {layer.name for layer in evaluated.layers if layer.calls or layer.weights_used}
    for layer in idle:
        layer.eval_only = layer.name in ran
