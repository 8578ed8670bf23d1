"""Framework adapters: each turns a target into a `Trace`. Only the adapter a target needs is imported."""

import os

# TensorFlow logs to stderr from C++ when it is imported (oneDNN notices, absl warnings); shapecheck computes
# nothing with it, so these are noise in a linter's output. Set before any framework import.
_QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}


def quiet_frameworks():
    for name, value in _QUIET.items():
        os.environ.setdefault(name, value)
