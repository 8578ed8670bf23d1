"""Models of any size: whole-process time and peak memory of shapecheck against the baselines it must stay near.

    python benchmarks/model_sizes.py            # every case, median of 3
    python benchmarks/model_sizes.py --runs 1 --only llama

Each case runs in fresh processes, side by side with its baseline in the same run; time is wall-clock, memory the
process's peak resident set (from `wait4`). Prints a Markdown table (the README shows the latest one). Peers a user
would otherwise reach for are measured on the same models where installed: a plain `model(x)` forward and
`torchinfo.summary` (a real forward; `pip install torchinfo`).
"""

from __future__ import annotations

import argparse
import ast
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "benchmarks" / "models"
PYTHON = sys.executable
SHAPECHECK = [PYTHON, "-m", "shapecheck"]


@dataclass
class Measure:
    seconds: float
    peak_mib: float
    status: int


def measure(command: list[str], runs: int) -> Measure:
    """Median wall time and peak RSS over `runs` fresh processes."""
    results = []
    for _ in range(runs):
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, status, usage = os.wait4(process.pid, 0)
        results.append(Measure(time.perf_counter() - start, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)))
    return Measure(statistics.median(r.seconds for r in results), statistics.median(r.peak_mib for r in results),
                   results[-1].status)


def _thirty() -> list[str]:
    """The model names, read without importing torchvision: a child forked from a big parent would report the
    parent's peak memory as its own."""
    tree = ast.parse((MODELS / "torchvision_models.py").read_text())
    node = next(n for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "THIRTY")
    return ast.literal_eval(node.value)


def python(code: str) -> list[str]:
    return [PYTHON, "-c", f"import sys; sys.path.insert(0, {str(MODELS)!r})\n{code}"]


def cases(workdir: Path) -> list[tuple[str, list[str], str, list[str], str]]:
    """(name, shapecheck command, baseline name, baseline command, target)"""
    llama = ["check", "benchmarks/models/llama.py:build", "--input", "1,4096:int64", "--loss", "CrossEntropyLoss",
             "--labels", "1,4096:int64"]
    tv = "benchmarks/models/torchvision_models.py"

    thirty = ["check", *[f"{tv}:{name}" for name in _thirty()], "--input", "2,3,224,224", "--loss", "CrossEntropyLoss",
              "--labels", "2:int64"]
    return [
        ("6.7B LLaMA-style decoder, 1x4096 tokens", [*SHAPECHECK, *llama], "meta-device build + forward",
         python("import torch, llama\nwith torch.device('meta'):\n    m = llama.build()\n"
                "    m(torch.zeros(1, 4096, dtype=torch.long))"), "<= 1.5x, < 1 GB"),
        ("torchvision vit_h_14, batch 64", [*SHAPECHECK, "check", f"{tv}:vit_h_14", "--input", "64,3,224,224",
                                            "--loss", "CrossEntropyLoss", "--labels", "64:int64"],
         "import torch, torchvision", python("import torch, torchvision"), "<= 1.3x, < 1 GB"),
        ("resnet50 from a factory", [*SHAPECHECK, "check", f"{tv}:resnet50", "--input", "16,3,224,224", "--loss",
                                     "CrossEntropyLoss", "--labels", "16:int64"],
         "import torch, torchvision", python("import torch, torchvision"), "<= +0.5 s"),
        ("30 torchvision models, one call", [*SHAPECHECK, *thirty], "import torch, torchvision",
         python("import torch, torchvision"), "<= 2x"),
        ("saved Keras ResNet50 .keras", [*SHAPECHECK, "check", str(workdir / "resnet50.keras"), "--labels", "8:int64"],
         "import tensorflow", python("import tensorflow"), "<= 1.3x"),
        ("exported ResNet50 .onnx", [*SHAPECHECK, "check", str(workdir / "resnet50.onnx"), "--input", "8,3,224,224",
                                     "--loss", "CrossEntropyLoss", "--labels", "8:int64"],
         "onnx.load + strict shape inference",
         python(f"import onnx\nm = onnx.load({str(workdir / 'resnet50.onnx')!r})\n"
                "onnx.shape_inference.infer_shapes(m, strict_mode=True)"), "<= 1.5x"),
        ("shapecheck --help", [*SHAPECHECK, "--help"], "python -c pass", python("pass"), "< 0.3 s"),
        ("shapecheck rules", [*SHAPECHECK, "rules"], "python -c pass", python("pass"), "< 0.3 s"),
    ]


PEERS = [
    ("resnet50 from a factory", "plain forward, batch 16",
     "import torch, torchvision\nm = torchvision.models.resnet50()\nwith torch.no_grad():\n"
     "    m(torch.randn(16, 3, 224, 224))"),
    ("resnet50 from a factory", "torchinfo.summary, batch 16",
     "import torchinfo, torchvision\ntorchinfo.summary(torchvision.models.resnet50(), (16, 3, 224, 224))"),
    ("torchvision vit_h_14, batch 64", "plain forward, batch 64",
     "import torch, torchvision\nm = torchvision.models.vit_h_14()\nwith torch.no_grad():\n"
     "    m(torch.randn(64, 3, 224, 224))"),
]


def prepare(workdir: Path):
    """The saved Keras and exported ONNX ResNet50 files (built once, outside the measured runs)."""
    if not (workdir / "resnet50.keras").exists():
        subprocess.run(python(
            "import keras\nm = keras.applications.ResNet50(weights=None, classes=10)\n"
            "m.compile(loss='sparse_categorical_crossentropy')\n"
            f"m.save({str(workdir / 'resnet50.keras')!r})"), check=True, stderr=subprocess.DEVNULL)
    if not (workdir / "resnet50.onnx").exists():
        subprocess.run(python(
            "import torch, torchvision\nm = torchvision.models.resnet50(num_classes=10).eval()\n"
            f"torch.onnx.export(m, (torch.randn(1, 3, 224, 224),), {str(workdir / 'resnet50.onnx')!r}, "
            "input_names=['input'], dynamic_axes={'input': {0: 'batch'}}, dynamo=False)"), check=True,
            stderr=subprocess.DEVNULL)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="")
    parser.add_argument("--peers", action="store_true", help="also time a plain forward and torchinfo")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        prepare(workdir)
        print("| case | shapecheck | baseline | ratio / difference | target | peak RSS |")
        print("|---|---|---|---|---|---|")
        for name, command, base_name, base_command, target in cases(workdir):
            if args.only.lower() not in name.lower():
                continue
            ours, base = measure(command, args.runs), measure(base_command, args.runs)
            compare = (f"+{ours.seconds - base.seconds:.2f} s" if target.startswith("<= +") else
                       f"{ours.seconds / base.seconds:.2f}x" if "x" in target else f"{ours.seconds:.2f} s")
            failed = "" if ours.status in (0, 1) else f" (exit {ours.status})"
            print(f"| {name} | {ours.seconds:.2f} s{failed} | {base_name}: {base.seconds:.2f} s | {compare} | "
                  f"{target} | {ours.peak_mib:.0f} MiB |", flush=True)
        if args.peers:
            print("\n| model | peer | time | peak RSS |\n|---|---|---|---|")
            for model, peer, code in PEERS:
                if args.only.lower() in model.lower():
                    result = measure(python(code), args.runs)
                    shown = f"{result.seconds:.2f} s" if result.status == 0 else f"not run (exit {result.status})"
                    print(f"| {model} | {peer} | {shown} | {result.peak_mib:.0f} MiB |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
