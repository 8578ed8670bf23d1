"""Framework adapters: each turns a target into a `Trace`. Only the adapter a target needs is imported."""

import os
import sys

# TensorFlow logs to stderr from C++ when it is imported (oneDNN notices, absl warnings); shapecheck computes
# nothing with it, so these are noise in a linter's output. Set before any framework import.
_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def quiet_frameworks():
    for name, value in _QUIET.items():
        os.environ.setdefault(name, value)


def keep_triton_out_after_tensorflow():
    """triton's native modules crash the process when they load after TensorFlow's (a Keras target checked before
    a PyTorch one, in one process). The CPU tracer never needs triton and PyTorch handles its absence, so once
    TensorFlow is in, triton is marked missing before any user module or torch import can pull it in."""
    if "tensorflow" in sys.modules and "triton" not in sys.modules:
        sys.modules["triton"] = None
