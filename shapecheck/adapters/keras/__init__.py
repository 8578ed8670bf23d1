"""Keras 3 adapter: load `.keras`/`.h5` files and factories, read the compiled loss, trace symbolically, probe for
batch mixing.

Shapes come from Keras' own shape inference on symbolic tensors: no weights are read and nothing is computed for
them. The batch-mixing probe then runs the model for real on two made-up samples (`probe.py`).
tensorflow (or the configured backend) is imported only when a Keras target is checked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import warnings
import weakref

from shapecheck.adapters import quiet_frameworks

quiet_frameworks()

import keras  # noqa: E402

from shapecheck.adapters.keras.audit import audit  # noqa: E402, F401 (the training-signal audit)
from shapecheck.adapters.keras.edit import edited, train_step  # noqa: E402, F401 (recipe verification)
from shapecheck.adapters.keras.loss import check_loss  # noqa: E402, F401 (the adapter's loss oracle)
from shapecheck.adapters.keras.probe import probe_batch_mixing  # noqa: E402
from shapecheck.adapters.keras.tracer import KERAS_DIR, Recorder, trace_model  # noqa: E402
from shapecheck.adapters.sources import user_frame  # noqa: E402
from shapecheck.deadline import TraceTimeout  # noqa: E402
from shapecheck.errors import ShapecheckError  # noqa: E402
from shapecheck.losses import LossContract, resolve_loss  # noqa: E402
from shapecheck.shapes import TensorMeta, normalize_dtype  # noqa: E402
from shapecheck.trace import Location, Trace  # noqa: E402

FRAMEWORK = "keras"
EDITABLE = frozenset({"layer", "input", "output", "model"})   # `Edit.on` values `edited` applies
TRAINS = True
TAKES_VALUES = False  # traced from shapes: no input values (`example`) or user `post` code reach the model
_APPLICATIONS_DIR = os.path.join(KERAS_DIR, "src", "applications", "")
_SKIP_DIRS = (KERAS_DIR, os.path.dirname(os.path.dirname(keras.__file__)) + os.sep + "tensorflow")


def prepare() -> None:
    """Nothing to import ahead: the model's own load brought the framework in."""


def owns(obj) -> bool:
    return isinstance(obj, keras.Model)


def _with_application(location: Location) -> Location:
    """A layer built by a `keras.applications` function: where, in Keras, as `defined_in` (the user's line that
    called the function stays the location)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_APPLICATIONS_DIR):
            shown = os.path.relpath(filename, os.path.dirname(KERAS_DIR))
            return dataclasses.replace(location, defined_in=Location(shown, frame.f_lineno, filename))
        frame = frame.f_back
    return location


@contextlib.contextmanager
def recording_sites():
    """While user code runs: the line that created each layer."""
    sites = weakref.WeakKeyDictionary()
    original_init = keras.layers.Layer.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        if self not in sites:
            location = user_frame(_SKIP_DIRS, skip_self=self, with_callers=True)
            if location is not None:
                sites[self] = _with_application(location)

    keras.layers.Layer.__init__ = init
    try:
        yield sites
    finally:
        keras.layers.Layer.__init__ = original_init


@contextlib.contextmanager
def recording_definition_sites():
    """While a factory runs: the line that created each layer, and the layer being built if the factory fails."""
    recorder = Recorder()
    with recording_sites() as sites:
        try:
            with recorder.watching_calls():
                yield sites
        except Exception as exc:
            # Keras raises shape errors while a functional model is being built: that is a finding, not a load error
            failure_trace = recorder.build_failure(exc, sites)
            if failure_trace is None:
                raise
            raise BuildFailure(failure_trace) from exc


class BuildFailure(Exception):
    """The factory raised inside a Keras layer; carries the trace that pins the layer."""

    def __init__(self, trace: Trace):
        super().__init__(trace.failure.message)
        self.trace = trace


MAX_CONFIG_BYTES = 64 * 2**20   # a model's config.json is kilobytes to a few megabytes; more is not a model


def load_file(path: str, trust: bool = False):
    """A `.keras` archive is built from its architecture (`config.json`) alone: the weights archive is never read
    and variables are created uninitialised, which symbolic tracing is all that needs. `.h5` files load with their
    weights but uncompiled: Keras' own compile of a legacy file rebuilds the optimizer and metrics and fails on
    some it saved itself (the `mse` alias, a custom loss name, a metric wrapping a lambda), so only the loss is
    read back from its `training_config`."""
    try:
        with warnings.catch_warnings():   # optimizer-state notices are irrelevant to shapes
            warnings.simplefilter("ignore")
            if path.lower().endswith(".keras"):
                return _architecture(path, safe_mode=not trust)
            model = keras.saving.load_model(path, compile=False, safe_mode=not trust)
            model.loss = _loss_from_config(_h5_training_config(path).get("loss"), safe_mode=not trust)
            return model
    except ShapecheckError:
        raise
    except Exception as exc:
        text = " ".join(str(exc).split())
        if "safe_mode" in text or "Lambda" in text and "unsafe" in text.lower():
            raise ShapecheckError(f"`{path}` holds a Lambda layer whose Python code would run on loading; "
                                  "if you trust the file, pass --trust (pytest: --shapecheck-trust)", kind="load") from exc
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise ShapecheckError(f"cannot load `{path}` as a Keras model: {first}", kind="load") from exc


def _architecture(path: str, safe_mode: bool):
    """The model `config.json` describes, its variables left uninitialised (Keras' stateless scope), and the loss
    of its compile config; the optimizer and metrics are not built."""
    import json
    import zipfile

    from keras.src.backend.common.stateless_scope import StatelessScope
    from keras.src.saving.serialization_lib import ObjectSharingScope

    try:
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo("config.json")
            if info.file_size > MAX_CONFIG_BYTES:
                raise ShapecheckError(f"`{path}`: config.json declares {info.file_size} bytes, more than a model "
                                      "configuration holds", kind="load")
            config = json.loads(archive.read(info))
    except (zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ShapecheckError(f"cannot load `{path}` as a Keras model: not a .keras archive with a config.json "
                              f"({exc})", kind="load") from exc
    compile_config = config.pop("compile_config", None) or {}
    with StatelessScope(), ObjectSharingScope():
        model = keras.saving.deserialize_keras_object(config, safe_mode=safe_mode)
    model.loss = _loss_from_config(compile_config.get("loss"), safe_mode)
    return model


def _h5_training_config(path: str) -> dict:
    """What `compile` was given, as Keras saved it in the `.h5` file; {} for a model saved uncompiled."""
    import json

    import h5py

    with h5py.File(path, "r") as file:
        saved = file.attrs.get("training_config")
    if saved is None:
        return {}
    return json.loads(saved.decode("utf-8") if isinstance(saved, bytes) else saved)


def _loss_from_config(config, safe_mode: bool):
    """The loss `compile` was given, from its saved config, in the same structure (one, a list or a dict by output).
    A name stays a name (Keras fails to deserialize some of its own aliases); an object that cannot be rebuilt here
    (a custom loss not registered, a lambda) is None, and the loss rules are skipped unless `--loss` is given."""
    if isinstance(config, list):
        return [_loss_from_config(item, safe_mode) for item in config]
    if isinstance(config, dict) and "class_name" not in config:
        return {name: _loss_from_config(item, safe_mode) for name, item in config.items()}
    if config is None or isinstance(config, str):
        return config
    try:
        # a legacy `.h5` config names the class without its module
        return keras.saving.deserialize_keras_object(config, module_objects=vars(keras.losses), safe_mode=safe_mode)
    except Exception:
        return None


def declared_inputs(model, batch: int) -> list[TensorMeta] | None:
    """The input shapes the model declares, with the batch filled in; None when it declares none."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    specs = []
    for tensor in inputs or []:
        shape = tuple(tensor.shape)
        if any(d is None for d in shape[1:]):
            return None
        specs.append(TensorMeta((batch, *shape[1:]), normalize_dtype(str(tensor.dtype))))
    return specs or None


def declared_shapes(model) -> list[TensorMeta] | None:
    """The input shapes exactly as the model declares them, -1 for a free size (the batch, usually)."""
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        return None
    return [TensorMeta(tuple(-1 if d is None else int(d) for d in tensor.shape), normalize_dtype(str(tensor.dtype)))
            for tensor in inputs or []] or None


def compiled_losses(model, from_logits: bool | None) -> dict[str, LossContract]:
    """The losses from the model's compile config (`model.compile(loss=...)`): a dict or a list pairs one with each
    output by name; one loss applies to every output (""). An output whose loss weight is 0 is not trained."""
    loss = getattr(model, "loss", None)
    if loss is None:
        return {}
    names = list(getattr(model, "output_names", None) or [])
    if isinstance(loss, dict):
        pairs = list(loss.items())
    elif isinstance(loss, (list, tuple)):
        pairs = list(zip(names, loss)) if len(names) == len(loss) > 1 else [("", item) for item in loss[:1]]
    else:
        pairs = [("", loss)]
    weights = (model.get_compile_config() or {}).get("loss_weights") if hasattr(model, "get_compile_config") else None
    weights = dict(zip(names, weights)) if isinstance(weights, (list, tuple)) else weights or {}
    contracts = {name: _contract(item, from_logits) for name, item in pairs if weights.get(name, 1) != 0}
    return {name: contract for name, contract in contracts.items() if contract is not None}


def _contract(loss, from_logits: bool | None) -> LossContract | None:
    """A compiled loss (a name, a function or a `keras.losses` object) as a contract with its options."""
    config = loss.get_config() if hasattr(loss, "get_config") else {}
    name = config.get("name") or getattr(loss, "__name__", None) or (loss if isinstance(loss, str) else None)
    if hasattr(loss, "fn"):
        name = loss.fn.__name__
        config = {**config, **getattr(loss, "_fn_kwargs", {})}
    if not isinstance(name, str):
        return None
    logits = from_logits if from_logits is not None else config.get("from_logits")
    options = tuple((key, config[key]) for key in ("ignore_class", "label_smoothing") if config.get(key))
    try:
        return dataclasses.replace(resolve_loss(name, FRAMEWORK, logits, source="compile config"), options=options)
    except ShapecheckError:
        return None


def _application(model, trace: Trace) -> str:
    """`keras.applications:ResNet50` for a model one of Keras' application functions built (its layers were
    defined in keras/src/applications), else ""."""
    modules = {os.path.splitext(os.path.basename(layer.source.defined_in.file))[0] for layer in trace.layers
               if layer.source and layer.source.defined_in and layer.source.defined_in.file.startswith(_APPLICATIONS_DIR)}
    if not modules:
        return ""
    candidates = [name for name in dir(keras.applications) if name[:1].isupper() and
                  getattr(keras.applications, name).__module__.rpartition(".")[2] in modules]
    model_name = str(getattr(model, "name", "")).lower().replace("_", "")
    # one module holds several sizes (ResNet50, ResNet101): the one whose name starts the model's
    matching = sorted((name for name in candidates if model_name.startswith(name.lower())), key=len, reverse=True)
    function = (matching or candidates or [""])[0]
    return f"keras.applications:{function}" if function else "keras.applications"


def trace(model, specs: list[TensorMeta], target: str, sites=None, example=None, post=None) -> Trace:
    """Symbolic tensors carry shapes only: example values and `post` (PyTorch code after the model) do not apply."""
    trace = trace_model(model, specs, target, sites or {}, declared_shapes(model))
    trace.library = _application(model, trace)
    try:
        trace.input_names = [tensor.name for tensor in model.inputs or []]
    except (AttributeError, ValueError):   # a subclassed model declares no inputs
        pass
    if trace.failure is None:   # the model runs for real, at two samples; too large a model is skipped, noted
        try:
            trace.probe, note = probe_batch_mixing(model, specs, trace)
        except TraceTimeout as stopped:   # the symbolic trace finished: only the probe's real passes were slow
            note = f"batch-mixing probe stopped after {stopped.seconds:g} s (--timeout): it did not run"
        if note:
            trace.notes.append(note)
    return trace
