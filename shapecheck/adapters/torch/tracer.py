"""Trace a PyTorch module with fake tensors: every layer's shapes, the functional ops, and where it fails.

Fake tensors carry shape and dtype but no data, so a model of any size traces in well under a second and
nothing is computed. The model is left as it was: hooks removed, train/eval flags and buffers restored.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import re
from collections.abc import Mapping

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from shapecheck.adapters import keep_triton_out_after_tensorflow
from shapecheck.adapters.sources import user_frame
from shapecheck.adapters.torch import batchflow
from shapecheck.ops import canonical
from shapecheck.shapes import TensorMeta
from shapecheck.trace import SPATIAL_KEYS, Failure, Layer, Op, Trace, spatial_config

TORCH_DIR = os.path.dirname(torch.__file__)
_CONFIG_ATTRS = (
    "in_features", "out_features", "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
    "groups", "input_size", "hidden_size", "num_layers", "batch_first", "bidirectional", "num_embeddings",
    "embedding_dim", "dim", "normalized_shape", "num_features", "output_size",
)
# Fake kernels of these ops skip eager PyTorch's dtype check (float64 data into float32 weights runs under fake
# tensors), so the tracer applies it itself.
_WEIGHTED_OPS = {"linear", "bilinear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                 "conv_transpose3d", "lstm", "gru", "rnn_tanh", "rnn_relu"}
_ARG_OPS = {"softmax", "log_softmax", "view", "reshape", "flatten", "transpose", "permute", "squeeze", "unsqueeze",
            "cat", "stack", "layer_norm", "rms_norm", "roll", *batchflow.ALONG_DIM}


def layer_kind(module: nn.Module) -> str:
    kinds = (
        ((nn.Linear, nn.Bilinear, nn.LazyLinear), "linear"),
        ((nn.modules.conv._ConvNd,), "conv"),
        ((nn.RNNBase,), "rnn"),
        ((nn.Embedding, nn.EmbeddingBag), "embedding"),
        ((nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm), "norm"),
        ((nn.modules.pooling._MaxPoolNd, nn.modules.pooling._AvgPoolNd, nn.modules.pooling._AdaptiveAvgPoolNd,
          nn.modules.pooling._AdaptiveMaxPoolNd), "pool"),
        ((nn.Softmax, nn.LogSoftmax, nn.Sigmoid, nn.Tanh, nn.ReLU, nn.GELU, nn.LeakyReLU, nn.PReLU, nn.ELU,
          nn.SiLU, nn.Softplus, nn.Hardtanh, nn.ReLU6), "activation"),
        ((nn.Flatten, nn.Unflatten), "flatten"),
        ((nn.modules.dropout._DropoutNd,), "dropout"),
        ((nn.Sequential, nn.ModuleList, nn.ModuleDict), "container"),
    )
    return next((kind for classes, kind in kinds if isinstance(module, classes)), "other")


def sizes_from_weight(kind: str, type_name: str, weight: TensorMeta | None, groups: int = 1) -> dict:
    """Input and output sizes as the weight has them (PyTorch layouts: Linear [out, in], Conv [out, in/groups, ...],
    ConvTranspose [in, out/groups, ...])."""
    if weight is None or len(weight.shape) < 2:
        return {}
    first, second = weight.shape[:2]
    if kind == "linear":
        return {"in_features": second, "out_features": first}
    if kind == "conv" and "Transpose" in type_name:
        return {"in_channels": first, "out_channels": second * groups}
    if kind == "conv":
        return {"in_channels": second * groups, "out_channels": first}
    return {}


def meta(tensor: torch.Tensor) -> TensorMeta:
    dtype = tensor.dtype
    name = _DTYPE_NAMES.get(dtype)
    if name is None:
        name = _DTYPE_NAMES[dtype] = str(dtype).removeprefix("torch.")
    return TensorMeta(tuple(int(d) for d in tensor.shape), name)


_DTYPE_NAMES: dict[torch.dtype, str] = {}   # meta() runs for every tensor of every op


def tensor_leaves(value, path: str = ""):
    """Yield (path, tensor) for every tensor in a nested output: tuples, lists, dicts, dataclasses."""
    if isinstance(value, torch.Tensor):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from tensor_leaves(item, f"{path}[{key!r}]")
    elif isinstance(value, (tuple, list)):
        fields = getattr(value, "_fields", None)   # a namedtuple such as torchvision's InceptionOutputs
        for index, item in enumerate(value):
            yield from tensor_leaves(item, f"{path}.{fields[index]}" if fields else f"{path}[{index}]")
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for fld in dataclasses.fields(value):
            yield from tensor_leaves(getattr(value, fld.name), f"{path}.{fld.name}")


def choose_output(leaves: list[tuple[str, torch.Tensor]]) -> str | None:
    """The tensor a loss would receive: a `logits` entry when there is one, else the first tensor."""
    for path, _ in leaves:
        if path.strip("[]'\".") == "logits":
            return path
    return leaves[0][0] if leaves else None


class _OpRecorder(TorchFunctionMode):
    """Records every torch function that returns a tensor, with the tensors' producers."""

    def __init__(self, run: _Run):
        super().__init__()
        self.run = run

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name == "__get__":  # attribute reads such as `.shape`
            return func(*args, **kwargs)
        tensors = _tensor_args(args, kwargs)
        try:
            if name in _WEIGHTED_OPS:
                _check_same_dtype(name, tensors)
            result = _fast_batch_norm(func, args, kwargs) if name == "batch_norm" else None
            if result is None:
                result = func(*args, **kwargs)
        except Exception:
            self.run.failed_op = (name, tensors, _op_args(name, args, kwargs), user_frame((TORCH_DIR,), depth=2))
            raise
        stand_ins = self.run.stand_ins
        self.run.used_params.update(stand_ins.get(id(t), id(t)) for t in tensors
                                    if isinstance(t, nn.Parameter) or id(t) in stand_ins)
        outputs = [t for _, t in tensor_leaves(result)] if not isinstance(result, torch.Tensor) else [result]
        if outputs and tensors is not None:
            self.run.record_op(name, tensors, outputs, _op_args(name, args, kwargs))
        return result


def _fast_batch_norm(func, args, kwargs) -> torch.Tensor | None:
    """`F.batch_norm` on a fake input whose statistics and affine parameters all fit: its output is shaped like the
    input. Under fake tensors the real call decomposes for about 6 ms; anything that does not fit (or a single value
    per channel in training) goes the slow way, so the error raised is PyTorch's own."""
    from torch._subclasses.fake_tensor import FakeTensor

    if func is not torch.nn.functional.batch_norm:
        return None

    def bound(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5):
        return input, (running_mean, running_var, weight, bias), training

    try:
        x, stats, training = bound(*args, **kwargs)
    except TypeError:
        return None
    if not isinstance(x, FakeTensor) or x.dim() < 2 or x.dtype not in (torch.float32, torch.float64, torch.float16,
                                                                        torch.bfloat16):
        return None
    channels, per_channel = x.shape[1], x.numel() // max(x.shape[1], 1)
    if any(t is not None and (t.dim() != 1 or t.shape[0] != channels or t.dtype != x.dtype) for t in stats):
        return None
    if training and per_channel <= 1:
        return None
    return torch.empty_like(x)


def _check_same_dtype(name: str, tensors: list[torch.Tensor]):
    # among floating-point tensors only: a packed sequence hands the LSTM its int64 batch sizes
    dtypes = {str(t.dtype).removeprefix("torch.") for t in tensors if t.is_floating_point()}
    if len(dtypes) > 1:
        raise RuntimeError(f"{name}: tensors must have the same dtype, but got {' and '.join(sorted(dtypes))}")


def _tensor_args(args, kwargs) -> list[torch.Tensor]:
    found = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(v for v in value if isinstance(v, torch.Tensor))
    return found


def _op_args(name: str, args, kwargs) -> dict:
    if name == "einsum":
        return {"equation": args[0]} if args and isinstance(args[0], str) else {}
    if name == "__getitem__":   # an index by list or tensor may reorder samples; by ints and slices it cannot
        parts = args[1] if len(args) > 1 and isinstance(args[1], tuple) else args[1:]
        return {"fancy": any(isinstance(p, (list, torch.Tensor)) for p in parts)}
    if name not in _ARG_OPS:
        return {}
    plain = [a for a in args if isinstance(a, (int, tuple, list)) and not _tensor_args([a], {})]
    if len(plain) == 1 and isinstance(plain[0], (tuple, list)):   # view((-1, 400)) reads as view(-1, 400)
        plain = list(plain[0])
    return {"args": plain, **{k: v for k, v in kwargs.items() if isinstance(v, (int, tuple, list)) and not k.startswith("_")}}


def _window(module: nn.Module, kind: str) -> dict:
    """A conv's or pool's window settings in the normal form (`spatial_config`); `nn.MaxPool2d(2)` keeps ints."""
    if kind not in ("conv", "pool") or not hasattr(module, "kernel_size"):
        return {}
    kernel = module.kernel_size
    digits = re.search(r"([123])d$", type(module).__name__)
    rank = len(kernel) if isinstance(kernel, tuple) else int(digits.group(1)) if digits else 0
    settings = {key: getattr(module, key, None) for key in SPATIAL_KEYS}
    return spatial_config(rank, **settings) if rank else {}


class _Run:
    """The state of one traced forward pass."""

    def __init__(self, model: nn.Module, sites: Mapping):
        self.model = model
        self.names = {module: name for name, module in model.named_modules()}
        self.layers = {name: self._layer(name, module, sites) for module, name in self.names.items()}
        self.stack: list[str] = []
        self.ops: list[Op] = []
        self.producer: dict[int, int] = {}
        self.keep_alive: list[torch.Tensor] = []
        self.used_params: set[int] = set()
        self.failed_op: tuple | None = None   # (name, tensors, args, source) of the op that raised
        self.stand_ins: dict[int, int] = {}   # fake tensors standing in for meta parameters: id -> the original's id

    @staticmethod
    def _layer(name: str, module: nn.Module, sites: Mapping) -> Layer:
        params = {pname: meta(p) for pname, p in module.named_parameters(recurse=False)
                  if not isinstance(p, nn.parameter.UninitializedParameter)}
        config = {attr: getattr(module, attr) for attr in _CONFIG_ATTRS
                  if isinstance(getattr(module, attr, None), (int, tuple, bool, list))}
        kind = layer_kind(module)
        config.update(_window(module, kind))
        sizes = sizes_from_weight(kind, type(module).__name__, params.get("weight"), config.get("groups", 1))
        declared = {key: config[key] for key in sizes if key in config}
        return Layer(name=name, type=type(module).__name__, kind=kind, params=params, config={**config, **sizes},
                     declared=declared, source=sites.get(module), is_leaf=not any(True for _ in module.children()))

    def producers_of(self, tensors) -> list[int | None]:
        return [self.producer.get(id(t)) for t in tensors]

    def record_op(self, name: str, inputs: list[torch.Tensor], outputs: list[torch.Tensor], args: dict):
        index = len(self.ops)
        source = user_frame((TORCH_DIR,), depth=3)
        self.ops.append(Op(index, canonical(name), self.stack[-1] if self.stack else "", [meta(t) for t in inputs],
                           [meta(t) for t in outputs], self.producers_of(inputs), args, source, spelling=name))
        for tensor in outputs:
            self.producer[id(tensor)] = index
            self.keep_alive.append(tensor)

    def pre_hook(self, module, args, kwargs):
        name = self.names[module]
        layer = self.layers[name]
        layer.calls += 1
        if layer.calls == 1:
            tensors = _tensor_args(args, kwargs)
            layer.inputs = [meta(t) for t in tensors]
            layer.input_producers = self.producers_of(tensors)
        self.stack.append(name)

    def post_hook(self, module, args, kwargs, output):
        layer = self.layers[self.names[module]]
        if layer.calls == 1:
            layer.outputs = [meta(t) for _, t in tensor_leaves(output)]
        if self.stack:
            self.stack.pop()


def model_device(model: nn.Module) -> torch.device:
    """Where the weights are: a model built on the meta device gets meta inputs."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def make_inputs(specs: list[TensorMeta], batch: int, real: bool, device=None) -> list[torch.Tensor]:
    tensors = []
    for spec in specs:
        shape = (batch, *spec.shape[1:])
        dtype = getattr(torch, spec.dtype)
        if not real:
            tensors.append(torch.empty(shape, dtype=dtype, device=device))
        elif dtype.is_floating_point:
            tensors.append(torch.randn(shape, dtype=dtype))
        else:
            tensors.append(torch.randint(0, 2, shape, dtype=dtype))
    return tensors


def example_tensors(example, batch: int) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
    """Example input values as real tensors at `batch`. Along axis 0, arrays of the example's batch keep their
    first `batch` samples, or get copies of the first sample in front (sorted lengths stay sorted)."""
    have = example.batch
    rows = torch.arange(batch) if batch <= have else \
        torch.cat([torch.zeros(batch - have, dtype=torch.long), torch.arange(have)])

    def resized(array) -> torch.Tensor:
        tensor = torch.as_tensor(array)
        return tensor[rows] if tensor.dim() and tensor.shape[0] == have else tensor.clone()

    return [resized(a) for a in example.positional], {name: resized(a) for name, a in example.keyword.items()}


@contextlib.contextmanager
def preserved(model: nn.Module):
    """Restore train/eval flags and buffers (BatchNorm counters move even under fake tensors)."""
    modes = [(m, m.training) for m in model.modules()]
    buffers = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                if name in buffers and buffer.shape == buffers[name].shape:
                    buffer.copy_(buffers[name])


@contextlib.contextmanager
def meta_as_cpu_fakes(model: nn.Module, mode, run: _Run):
    """Stand CPU fake tensors in for the model's meta parameters and buffers during a symbolic run: a model built
    without weights then meets CPU inputs, and real buffers, on one device. The meta originals come back after."""
    from torch._subclasses.fake_tensor import FakeTensor

    from shapecheck.adapters.torch.weights import every_module  # weights -> probe -> tracer: imported here

    swapped = []
    for module in every_module(model):   # with layers held in plain lists: they run too
        for store in (module._parameters, module._buffers):
            for name, tensor in list(store.items()):
                if tensor is not None and tensor.is_meta:
                    fake = FakeTensor(mode, torch.empty_like(tensor, device="meta"), torch.device("cpu"))
                    if store is module._parameters:
                        run.stand_ins[id(fake)] = id(tensor)
                    swapped.append((store, name, tensor))
                    store[name] = fake
    try:
        yield
    finally:
        for store, name, tensor in swapped:
            store[name] = tensor


@contextlib.contextmanager
def seeded(seed: int = 0):
    """Fixed random state for one pass, restored afterwards: random layer drop, masking and dropout decide the same
    way on every run, so the same command gives the same findings."""
    import random

    import numpy as np

    python_state, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)
        try:
            yield
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)


def set_train_mode(model: nn.Module, training: bool):
    """`train()`/`eval()`, except on programs that fix their mode at export (torch.export modules refuse it)."""
    try:
        model.train(training)
    except NotImplementedError:
        pass


def is_data_dependent(exc: BaseException) -> bool:
    """The fake-tensor run hit code that needs real values (`.item()`, data-dependent shapes, `.numpy()`)."""
    module = type(exc).__module__
    text = str(exc)
    return (module.startswith(("torch._subclasses", "torch.fx.experimental"))
            or "FakeTensor" in text or "fake tensor" in text.lower() or "meta tensor" in text.lower()
            or "data-dependent" in text.lower())


def fake_tensor_mode():
    """torch's FakeTensorMode. Its first use imports dynamo, about a second, so that happens here, once a torch
    target is traced (not with the adapter) and before `--timeout` counts (`prepare`)."""
    keep_triton_out_after_tensorflow()   # dynamo imports triton when it can
    import torch._dynamo  # noqa: F401
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode


def run_once(model: nn.Module, specs: list[TensorMeta], batch: int, target: str, sites: Mapping,
             real: bool = False, example=None, training: bool = True, post=None) -> Trace:
    """One forward pass at `batch`; never raises for an error inside the model, it records it. Example input
    values (lengths, masks, ids) enter as real tensors even in a symbolic run, so code that reads them works.
    `post` is the user's code between the model and the loss (`.logits`, `.view(-1, C)`), applied to the output
    while ops are still recorded."""
    FakeTensorMode = fake_tensor_mode()
    run = _Run(model, sites)
    handles = []
    for module in run.names:
        if isinstance(module, torch.jit.ScriptModule):
            continue  # TorchScript takes no hooks: only the output is recorded
        handles.append(module.register_forward_pre_hook(run.pre_hook, with_kwargs=True))
        handles.append(module.register_forward_hook(run.post_hook, with_kwargs=True))
    fake = contextlib.nullcontext() if real else FakeTensorMode(allow_non_fake_inputs=True)
    trace = Trace(target=target, framework="torch", inputs=[], mode="real" if real else "symbolic",
                  model_class=type(model).__name__, library=f"{type(model).__module__.partition('.')[0]}:{type(model).__name__}",
                  task=declared_task(model))
    quiet = logging.getLogger("torch._subclasses.fake_tensor")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)
    given = example_tensors(example, batch) if example is not None else None
    stand_ins = meta_as_cpu_fakes(model, fake, run) if not real else contextlib.nullcontext()
    try:   # the stand-ins are made before the fake mode is entered: made inside it, each costs a fake dispatch
        with preserved(model), torch.no_grad(), stand_ins, fake, seeded():
            set_train_mode(model, training)
            inputs, keywords = given or (make_inputs(specs, batch, real), {})
            trace.inputs = [meta(t) for t in (*inputs, *keywords.values())]
            for tensor in (*inputs, *keywords.values()):
                run.producer[id(tensor)] = -1
            try:
                with _OpRecorder(run):
                    output = model(*inputs, **keywords)
                    output = post(output) if post is not None else output
            except Exception as exc:  # the model's own error is the finding, not ours
                trace.failure = _failure(run, exc)
            else:
                leaves = list(tensor_leaves(output))
                trace.outputs = {path: meta(t) for path, t in leaves}
                trace.output_ops = {path: run.producer.get(id(t)) for path, t in leaves}
                if isinstance(output, (tuple, list)):
                    trace.output_container = type(output).__name__
                trace.output_path = choose_output(leaves)
                chosen = dict(leaves).get(trace.output_path)
                trace.output_op = run.producer.get(id(chosen)) if chosen is not None else None
    finally:
        quiet.setLevel(level)
        for handle in handles:
            handle.remove()
    for module, name in run.names.items():
        run.layers[name].weights_used = any(id(p) in run.used_params for p in module.parameters(recurse=False))
    trace.layers = list(run.layers.values())
    trace.ops = run.ops
    return trace


def _failure(run: _Run, exc: Exception) -> Failure:
    layer = run.stack[-1] if run.stack else None
    op_name, tensors, args, source = run.failed_op or (None, [], {}, None)
    inputs = [meta(t) for t in tensors] if tensors else (run.layers[layer].inputs if layer is not None else [])
    message = next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
    return Failure(layer=layer, op=canonical(op_name) if op_name else None, exception=type(exc).__name__,
                   message=message, inputs=inputs, op_spelling=op_name, producers=run.producers_of(tensors),
                   op_index=len(run.ops) if op_name else None, needs_values=is_data_dependent(exc), args=args,
                   source=source)


# Hugging Face `config.problem_type` values, as `Trace.task` names them
_PROBLEM_TYPES = {"multi_label_classification": "multi_label", "single_label_classification": "single_label",
                  "regression": "regression"}


def declared_task(model) -> str:
    """The problem a model's configuration declares (`BertConfig(problem_type="multi_label_classification")`)."""
    problem = getattr(getattr(model, "config", None), "problem_type", None)
    return _PROBLEM_TYPES.get(problem, "") if isinstance(problem, str) else ""
