"""Hostile files and bad input: nothing the user did not allow runs, every failure is one line with exit code 2,
and nothing in the user's tree is written."""

from __future__ import annotations

import hashlib
import random
import shutil
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from shapecheck import pipeline
from shapecheck.cli import main
from shapecheck.request import Flags

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fixtures" / "onnx" / "rules"))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def assert_one_line_error(result, fragment: str = ""):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0], lines[0]


# --- hostile files: the code they hold never runs without --trust ---

class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path):
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save(_Payload(marker), path)
    assert_one_line_error(run("check", path, "--input", "2,4"), "--trust")
    assert not marker.exists()
    run("check", path, "--input", "2,4", "--trust")   # the user trusts it: full pickle, the payload runs
    assert marker.exists()


def test_a_pickled_module_loads_only_with_trust(tmp_path):
    import torch

    path = tmp_path / "model.pth"
    torch.save(torch.nn.Sequential(torch.nn.Linear(4, 2)), path)
    assert_one_line_error(run("check", path, "--input", "2,4"), "holds a pickled `torch.nn.modules.container.Sequential`")
    assert run("check", path, "--input", "2,4", "--trust").exit_code == 0


def test_a_state_dict_is_named_as_weights_not_a_model(tmp_path):
    import torch

    path = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(4, 2).state_dict(), path)
    assert_one_line_error(run("check", path, "--input", "2,4"), "holds weights (a state dict of 2 tensors)")


def test_a_keras_lambda_that_would_run_code_is_refused(tmp_path):
    import keras

    marker = tmp_path / "pwned"
    model = keras.Sequential([keras.Input((4,)),
                              keras.layers.Lambda(lambda t, path=str(marker): (open(path, "w").close(), t)[1]),
                              keras.layers.Dense(1)])
    path = tmp_path / "lambda.keras"
    model.save(path)
    marker.unlink(missing_ok=True)   # building the model above called the lambda
    assert_one_line_error(run("check", path, "--labels", "2", "--loss", "mse"), "--trust")
    assert not marker.exists()


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/hostname", "link.bin"])
def test_onnx_external_data_outside_the_model_folder_is_refused(tmp_path, location):
    import graphs
    import onnx

    folder = tmp_path / "models"
    folder.mkdir()
    (tmp_path / "outside.bin").write_bytes(b"\0" * 160)
    (folder / "link.bin").symlink_to(tmp_path / "outside.bin")   # a symlink that leads out
    model = graphs.classifier()
    tensor = model.graph.initializer[1]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.external_data.add(key="location", value=location)
    onnx.save(model, folder / "m.onnx")
    assert_one_line_error(run("check", folder / "m.onnx", "--labels", "8"), "outside its folder")


def test_a_keras_archive_whose_config_would_inflate_without_bound_is_refused(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", b" " * (80 * 2**20))   # 80 MiB of spaces, about 80 KiB on disk
    assert path.stat().st_size < 2**20
    assert_one_line_error(run("check", path, "--labels", "2"), "more than a model configuration holds")


# --- malformed model files: every loader, every way of being broken ---

def _valid_files(folder: Path) -> dict[str, bytes]:
    import graphs
    import onnx
    import torch

    from shapecheck.adapters import keep_triton_out_after_tensorflow

    keep_triton_out_after_tensorflow()   # torch.export imports dynamo, and triton crashes after TensorFlow

    small = torch.nn.Sequential(torch.nn.Linear(4, 2))
    torch.jit.save(torch.jit.script(small), folder / "v.pt")
    torch.export.save(torch.export.export(small, (torch.randn(2, 4),)), folder / "v.pt2")
    onnx.save(graphs.classifier(), folder / "v.onnx")
    files = {"onnx": folder / "v.onnx", "pt": folder / "v.pt", "pt2": folder / "v.pt2",
             "keras": ROOT / "fixtures/keras/binary_head_fixed.keras", "h5": ROOT / "fixtures/keras/sparse_ok.h5"}
    return {ext: path.read_bytes() for ext, path in files.items()}


def _damaged(data: bytes, rng: random.Random) -> dict[str, bytes]:
    flipped = bytearray(data)
    for _ in range(16):
        flipped[rng.randrange(len(flipped))] ^= 0xFF
    return {"empty": b"", "random": rng.randbytes(4096), "truncated": data[: len(data) // 2],
            "bit-flipped": bytes(flipped)}


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    return _valid_files(tmp_path_factory.mktemp("valid"))


# slow: torch.jit.load takes over a minute and gigabytes of memory to refuse the bit-flipped .pth
@pytest.mark.parametrize("ext", ["onnx", "keras", "h5", "pt", "pt2", pytest.param("pth", marks=pytest.mark.slow)])
@pytest.mark.parametrize("damage", ["empty", "random", "truncated", "bit-flipped"])
def test_a_damaged_model_file_is_a_one_line_error(tmp_path, valid_files, ext, damage):
    data = _damaged(valid_files.get(ext, valid_files["pt"]), random.Random(f"{ext}{damage}"))[damage]
    path = tmp_path / f"model.{ext}"
    path.write_bytes(data)
    result = run("check", path, "--input", "2,4", "--loss", "MSELoss", "--labels", "2,2")
    if damage == "bit-flipped" and result.exit_code in (0, 1):   # the flips may have missed everything that matters
        return
    assert_one_line_error(result, f"model.{ext}")


def test_bounded_fuzz_of_every_loader_lets_no_exception_escape(tmp_path, valid_files):
    """200 mutations (flipped, deleted, duplicated and inserted bytes) through the same path the CLI takes."""
    rng = random.Random(20261205)
    flags = Flags(inputs=["2,4"], loss="MSELoss", labels="2,2")
    outcomes = {"error": 0, "checked": 0}
    for trial in range(200):
        ext = rng.choice(sorted(valid_files))
        data = bytearray(valid_files[ext])
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            action = rng.choice(["flip", "delete", "duplicate", "insert"])
            if action == "flip":
                data[at] = rng.randrange(256)
            elif action == "delete":
                del data[at: at + rng.randint(1, 64)]
            elif action == "duplicate":
                data[at:at] = data[at: at + rng.randint(1, 64)]
            else:
                data[at:at] = rng.randbytes(rng.randint(1, 16))
        path = tmp_path / f"fuzz{trial}.{ext}"
        path.write_bytes(bytes(data))
        result = pipeline.run(flags.request(str(path)))   # must not raise
        outcomes["error" if result.error else "checked"] += 1
        if result.error:
            assert "\n" not in result.error["message"].strip(), result.error
    assert outcomes["error"] > 50, outcomes


# --- bad targets and options ---

FACTORIES = textwrap.dedent("""
    import torch
    from torch import nn

    class Database(nn.Module):
        def forward(self, x):
            raise ConnectionError("database unreachable")

    class Spin(nn.Module):
        def forward(self, x):
            while True:
                x = x + 0

    def raises():
        raise RuntimeError("no config found")

    def not_a_model():
        return {"weights": 1}

    def remote():
        return nn.Sequential(nn.Linear(4, 4), Database())

    def spins():
        return nn.Sequential(nn.Linear(4, 4), Spin())
""")


@pytest.fixture
def factories(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.py").write_text(FACTORIES)
    return "models.py"


@pytest.mark.parametrize("factory, fragment", [
    ("missing", "has no callable `missing`"),
    ("raises", "raised while building the model: RuntimeError: no config found"),
    ("not_a_model", "returned a dict, not a model"),
])
def test_a_bad_factory_is_a_one_line_error(factories, factory, fragment):
    assert_one_line_error(run("check", f"{factories}:{factory}", "--input", "2,4"), fragment)


def test_a_forward_that_raises_for_another_reason_is_reported_as_such_with_its_layer(factories):
    result = run("check", f"{factories}:remote", "--input", "2,4")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "`model[1]` (Database) failed with inputs [2, 4]: ConnectionError: database unreachable" in result.output


def test_a_forward_that_never_ends_is_stopped_where_it_was(factories):
    result = run("check", f"{factories}:spins", "--input", "2,4", "--timeout", "1")
    assert_one_line_error(result, "did not finish within 1 s (stopped at models.py:12 in `forward`)")


@pytest.mark.parametrize("args, fragment", [
    (["--input", "2,,x"], "invalid --input `2,,x`: a size is missing"),
    (["--input", "2,4,"], "a size is missing"),
    (["--input", "2.5,4"], "`2.5` is not a size"),
    (["--input", "2,0"], "sizes must be between 1"),
    (["--input", "2,4", "--labels", "2;4"], "invalid --labels `2;4`"),
    (["--input", "2,4:int65"], "unknown dtype `int65`; did you mean `int64`?"),
    (["--input", "2,4", "--loss", "MSELos"], "did you mean `MSELoss`?"),
    (["--input", "2,4", "--timeout", "-1"], "--timeout"),
    (["--input-file", "missing.npz"], "missing.npz"),
    (["--input", "2,4", "--labels-file", "garbage.npy"], "cannot read labels file `garbage.npy`"),
    (["--input-file", "garbage.npz"], "cannot read input file `garbage.npz`"),
    (["--input", "2,4", "--no-such-option"], "No such option"),
])
def test_malformed_options_are_one_line_errors(factories, args, fragment):
    Path("garbage.npy").write_bytes(b"\x93NUMPY\x01\x00garbage")
    Path("garbage.npz").write_bytes(b"PK\x03\x04 not a zip")
    assert_one_line_error(run("check", f"{factories}:remote", *args), fragment)


@pytest.mark.parametrize("target, fragment", [
    ("missing.onnx", "does not exist"),
    ("folder.onnx", "is a directory"),
    ("missing.py:build", "does not exist"),
    ("model.bin", "cannot check `model.bin`"),
])
def test_a_target_that_is_not_a_model_file_is_a_one_line_error(tmp_path, monkeypatch, target, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder.onnx").mkdir()
    assert_one_line_error(run("check", target, "--input", "2,4"), fragment)


def test_a_framework_that_is_not_installed_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "shapecheck.adapters.onnx", None)   # as if onnx were missing
    result = run("check", ROOT / "fixtures/onnx/binary_head_1.onnx", "--labels", "2")
    assert_one_line_error(result, "pip install 'shapecheck-dl[onnx]'")


# --- nothing written ---

def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() + str(p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_checking_writes_nothing_in_the_users_tree(tmp_path, monkeypatch):
    for source in ("fixtures/torch/cli_models.py", "fixtures/keras/binary_head_1000.keras",
                   "fixtures/onnx/binary_head_10.onnx"):
        shutil.copy(ROOT / source, tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.shapecheck]\nignore = ["SC207"]\n')
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    run("check", "cli_models.py:classifier", "--input", "2,3,16,16", "--loss", "CrossEntropyLoss", "--labels", "2")
    run("check", "binary_head_1000.keras", "--labels", "2", "--format", "sarif")
    run("check", "binary_head_10.onnx", "--labels", "2", "--format", "json")
    run("trace", "cli_models.py:classifier", "--input", "2,3,16,16")
    assert _snapshot(tmp_path) == before
    assert not any(p.name == "__pycache__" for p in tmp_path.rglob("*"))
