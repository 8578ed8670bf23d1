"""Scripts written for several devices (`torchrun`, `init_process_group("nccl")`, DDP or FSDP) run by `shapecheck
run` as one process on this machine: world size 1, gloo where NCCL needs a GPU that is not there. A script that puts
tensors on a GPU this machine lacks cannot run; that is said in one line with the script's own line."""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import socket
import traceback

from shapecheck.adapters.sources import display_path

# what `torchrun --nproc-per-node 1` gives the script, set only where the caller's environment does not
_SINGLE_PROCESS = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1",
                   "MASTER_ADDR": "127.0.0.1"}
# what torch raises when a tensor goes to a GPU that is not there (CPU build; CUDA build without a driver or GPU)
_NO_GPU_MESSAGES = ("Torch not compiled with CUDA enabled", "Found no NVIDIA driver", "No CUDA GPUs are available",
                    "CUDA driver initialization failed")
# a script that starts a process group or reads torchrun's variables (itself, not a library it calls)
_TORCHRUN_WORDS = re.compile(r"init_process_group|\b(LOCAL_)?RANK\b|\bWORLD_SIZE\b")
_NO_GPU_HINT = "use `device = 'cuda' if torch.cuda.is_available() else 'cpu'`"


@contextlib.contextmanager
def single_process_environment(script: str):
    """The rendezvous variables of a one-process `torchrun` while a script written for it runs, the caller's own
    kept. Only for such a script: Hugging Face and Accelerate read `LOCAL_RANK` as "go distributed" and would wrap
    the model of a script that never asked for it."""
    wanted = {**_SINGLE_PROCESS, "MASTER_PORT": str(_free_port())} if _written_for_torchrun(script) else {}
    added = [name for name in wanted if name not in os.environ]
    os.environ.update({name: wanted[name] for name in added})
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _written_for_torchrun(script: str) -> bool:
    with open(script, encoding="utf-8", errors="replace") as source:
        return _TORCHRUN_WORDS.search(source.read()) is not None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def install():
    """Make `init_process_group("nccl")` and `DistributedDataParallel(model, device_ids=[rank])` work on a machine
    without a GPU (gloo, a CPU module); untouched where CUDA is available. Returns the undo."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    if torch.cuda.is_available() or not dist.is_available():
        return lambda: None
    init, ddp_init = dist.init_process_group, DistributedDataParallel.__init__

    @functools.wraps(init)
    def init_process_group(backend=None, *args, **kwargs):
        if kwargs.get("device_id") is not None:   # a CUDA device this machine does not have
            kwargs["device_id"] = None
        return init(_without_nccl(backend), *args, **kwargs)

    @functools.wraps(ddp_init)
    def ddp_on_cpu(self, module, device_ids=None, output_device=None, *args, **kwargs):
        # DDP takes device ids only for GPU modules; on this machine the module is on the CPU
        ddp_init(self, module, None, None, *args, **kwargs)

    dist.init_process_group, DistributedDataParallel.__init__ = init_process_group, ddp_on_cpu

    def undo():
        dist.init_process_group, DistributedDataParallel.__init__ = init, ddp_init
    return undo


def _without_nccl(backend):
    """`nccl` becomes `gloo`, also in a per-device list (`cpu:gloo,cuda:nccl`)."""
    if backend is None:
        return None
    return str(backend).replace("nccl", "gloo")


def unwrapped(model):
    """The model inside a DDP, DataParallel or FSDP wrapper (the wrapper adds no layer of its own to check)."""
    from torch import nn
    from torch.nn.parallel import DistributedDataParallel

    fsdp = _fsdp_class()
    if fsdp is not None and isinstance(model, fsdp):
        return _full_copy(fsdp, model)
    while isinstance(model, (DistributedDataParallel, nn.DataParallel)):
        model = model.module
    return model


def _fsdp_class():
    try:
        from torch.distributed.fsdp import FullyShardedDataParallel
    except ImportError:
        return None
    return FullyShardedDataParallel


def _full_copy(fsdp, model):
    """FSDP holds the weights as one flat tensor and the layers see views of it: a copy of the inner model with its
    own parameters is what `check` would see (the script's model is left as it is)."""
    with fsdp.summon_full_params(model):
        return copy.deepcopy(model.module)


def no_gpu_message(exc: BaseException, script: str) -> str | None:
    """One line for a script that moved tensors to a GPU this machine does not have; None for any other error."""
    if not any(text in str(exc) for text in _NO_GPU_MESSAGES):
        return None
    line = _script_line(exc, script)
    where = f" ({line})" if line else ""
    return f"the script moves tensors to CUDA{where}; this machine has no GPU: {_NO_GPU_HINT}"


def _script_line(exc: BaseException, script: str) -> str:
    """The innermost line of the script's own folder in the traceback: where the script asked for the GPU."""
    folder = os.path.join(os.path.dirname(os.path.abspath(script)), "")
    lines = [frame for frame in traceback.extract_tb(exc.__traceback__)
             if os.path.abspath(frame.filename).startswith(folder) and "site-packages" not in frame.filename]
    return f"{display_path(lines[-1].filename)}:{lines[-1].lineno}" if lines else ""
