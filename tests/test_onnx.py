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


@pytest.mark.subprocess   # a fresh interpreter, to see what it imports (about 1 s: no framework)
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


def test_a_graph_is_read_without_its_weight_payloads(tmp_path, monkeypatch):
    """Large initializers keep name, dtype and dims but lose their bytes; small ones (shape constants) and every
    node are read as stored."""
    from shapecheck.adapters import onnx as onnx_adapter

    path = tmp_path / "flat.onnx"
    onnx.save(graphs.flattening(), path)
    stored, read = onnx.load(str(path)), onnx_adapter.load_file(str(path))
    assert read.graph.node == stored.graph.node and read.graph.input == stored.graph.input
    for kept, original in zip(read.graph.initializer, stored.graph.initializer):
        assert (kept.name, kept.data_type, kept.dims) == (original.name, original.data_type, original.dims)
        small = onnx.numpy_helper.to_array(original).size <= 64
        assert (kept.raw_data == original.raw_data) if small else not kept.raw_data
    stripped = run("check", str(path), "--loss", "CrossEntropyLoss", "--labels", "8", "--format", "json")

    def whole_file(*args):
        raise onnx_adapter.WireError("read it whole")

    monkeypatch.setattr(onnx_adapter, "read_structure", whole_file)
    whole = run("check", str(path), "--loss", "CrossEntropyLoss", "--labels", "8", "--format", "json")
    assert stripped.output == whole.output and stripped.exit_code == whole.exit_code


@pytest.mark.slow
@pytest.mark.subprocess
def test_reading_a_graph_with_400_mb_of_weights_stays_far_below_its_size(tmp_path):
    import numpy as np

    weight = onnx.numpy_helper.from_array(np.ones((10, 10_000_000), np.float32), "fc.weight")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Gemm", ["x", "fc.weight"], ["y"], transB=1)], "big",
        [onnx.helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10_000_000])],
        [onnx.helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])], [weight])
    path = tmp_path / "big.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    del weight, graph
    # VmHWM, the peak of this process's own memory (ru_maxrss would carry the forking test process's peak)
    code = ("import re, sys\nfrom shapecheck.adapters import onnx as a\nmodel = a.load_file(sys.argv[1])\n"
            "peak = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)\n"
            "print(len(model.graph.initializer), int(peak) // 1024)")
    count, peak_mib = map(int, subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                                              text=True, check=True).stdout.split())
    assert count == 1
    assert peak_mib < 200, f"peak {peak_mib} MiB for a {path.stat().st_size >> 20} MiB file"


@pytest.mark.parametrize("content", [b"", b"\x0a\xff\xff\xff\xff\x0f", b"not a protobuf at all \xff\xfe"])
def test_a_damaged_onnx_file_is_a_one_line_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    result = run("check", str(path), "--input", "2,3", "--loss", "MSELoss", "--labels", "2,3")
    assert result.exit_code == 2 and "Traceback" not in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1
