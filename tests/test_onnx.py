"""The ONNX adapter: node-by-node shape inference on graphs built by hand, without torch or tensorflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

onnx = pytest.importorskip("onnx")
from click.testing import CliRunner  # noqa: E402
from onnx import TensorProto  # noqa: E402

from shapecheck.cli import main  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fixtures" / "onnx" / "rules"))
import graphs  # noqa: E402


def classifier(path, **options):
    onnx.save(graphs.classifier(**options), path)
    return str(path)


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_clean_graph_with_inputs_from_the_graph(tmp_path):
    result = run("check", classifier(tmp_path / "m.onnx"), "--loss", "CrossEntropyLoss", "--labels", "8",
                 "--format", "json")
    entry = json.loads(result.output)["results"][0]
    assert result.exit_code == 0, result.output
    assert entry["framework"] == "onnx" and entry["input_shape"] == [8, 3, 8, 8] and entry["output_shape"] == [8, 10]
    assert [(layer["name"], layer["type"]) for layer in entry["layers"]] == [
        ("conv", "Conv"), ("relu", "Relu"), ("pool", "GlobalAveragePool"), ("Flatten", "Flatten"), ("fc", "Gemm")]


def test_head_width_names_the_exported_module(tmp_path):
    result = run("check", classifier(tmp_path / "m.onnx"), "--input", "4,3,8,8", "--loss", "BCEWithLogitsLoss",
                 "--labels", "4")
    assert result.exit_code == 1
    assert "error[SC101] `BCEWithLogitsLoss` input from `fc` has shape [4, 10]" in result.output
    assert "model.fc = nn.Linear(4, 1)" in result.output


def test_inconsistent_gemm_is_pinned_on_its_node(tmp_path):
    result = run("check", classifier(tmp_path / "m.onnx", gemm_in=512), "--input", "4,3,8,8", "--loss",
                 "CrossEntropyLoss", "--labels", "4")
    assert result.exit_code == 1
    assert "error[SC201] `fc` (Gemm) expects 512 input features but receives [4, 4] from `Flatten`" in result.output


def test_softmax_baked_into_the_graph(tmp_path):
    result = run("check", classifier(tmp_path / "m.onnx", softmax=True), "--loss", "CrossEntropyLoss",
                 "--labels", "8")
    assert result.exit_code == 1 and "SC152" in result.output


def test_channel_count_frozen_in_the_graph(tmp_path):
    result = run("check", classifier(tmp_path / "m.onnx"), "--input", "2,1,8,8", "--loss", "CrossEntropyLoss",
                 "--labels", "2")
    assert result.exit_code == 1
    assert "error[SC214] the model declares input 0 as (None, 3, 8, 8), but the input is [2, 1, 8, 8]" in result.output


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    path = classifier(tmp_path / "m.onnx")
    model = onnx.load(path)
    tensor = model.graph.initializer[1]
    tensor.data_location = TensorProto.EXTERNAL
    tensor.ClearField("raw_data")
    tensor.ClearField("float_data")
    tensor.external_data.add(key="location", value="../../etc/weights.bin")
    onnx.save(model, path)
    result = run("check", path, "--loss", "CrossEntropyLoss", "--labels", "8")
    assert result.exit_code == 2 and "outside its folder" in result.stderr


def test_checking_onnx_imports_neither_torch_nor_tensorflow(tmp_path):
    path = classifier(tmp_path / "m.onnx")
    code = textwrap.dedent(f"""
        import sys
        from shapecheck.cli import main
        sys.argv = ["shapecheck", "check", {path!r}, "--loss", "ce", "--labels", "8"]
        try:
            main()
        except SystemExit as done:
            assert done.code == 0, done.code
        print(sorted({{name.split(".")[0] for name in sys.modules}} & {{"torch", "tensorflow", "keras"}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name, code", [("binary_head_10.onnx", 1), ("binary_head_1.onnx", 0), ("batch_frozen.onnx", 1)])
def test_models_exported_from_pytorch(name, code, request):
    path = request.config.rootpath / "fixtures" / "onnx" / name
    result = run("check", str(path), "--input", "4,3,16,16", "--loss", "BCEWithLogitsLoss", "--labels", "4,1:float32")
    assert result.exit_code == code, result.output
