"""Wall time and peak memory of `shapecheck check`, as a user would time it (a fresh process per run).

    python benchmarks/cli_wall_time.py                 # the README's main command, 3 runs
    python benchmarks/cli_wall_time.py --runs 5 check torchvision.models:vit_b_16 --input 2,3,224,224
    python benchmarks/cli_wall_time.py --baseline "import tensorflow" check resnet50.keras --labels 16

Prints one line per run, the median, and the cost of the framework import alone (--baseline) for comparison.
Peak memory is the child's maximum resident set size (Linux `ru_maxrss`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN = ["check", "fixtures/torch/resnet50_single_class.py:build_model", "--input", "16,3,224,224",
        "--loss", "BCEWithLogitsLoss", "--labels", "16"]


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(seconds, peak RSS in MB, exit code) of one child process, its output discarded."""
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.execv(sys.executable, [sys.executable, *argv])
    _, status, usage = os.wait4(pid, 0)
    return time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default="import torch, torchvision", help="code to time alone, for comparison")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="shapecheck arguments (default: the README command)")
    options = parser.parse_args()
    os.chdir(ROOT)
    baseline = measure(["-c", options.baseline])   # also warms the file cache
    times = []
    for index in range(options.runs):
        seconds, peak_mb, code = measure(["-m", "shapecheck", *(options.args or MAIN)])
        times.append(seconds)
        print(f"run {index + 1}: {seconds:.2f} s, peak RSS {peak_mb:.0f} MB, exit {code}")
    print(f"median {statistics.median(times):.2f} s over {options.runs} runs; "
          f"`python -c '{options.baseline}'` alone: {baseline[0]:.2f} s, {baseline[1]:.0f} MB")


if __name__ == "__main__":
    main()
