"""The framework decides: mismatches no specific rule recognises are still reported (the loss oracle, SC100), value
inputs reach the forward, and the same command gives the same findings every time."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest
from click.testing import CliRunner

from shapecheck.cli import main


@pytest.fixture
def write(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def write(code: str, name: str = "model.py") -> str:
        (tmp_path / name).write_text(textwrap.dedent(code))
        return name
    return write


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


TORCH_OUTPUT = """
    from torch import nn

    class Head(nn.Module):
        def __init__(self, shape):
            super().__init__()
            self.shape = shape
            self.out = nn.Linear(8, int(__import__("math").prod(shape)))

        def forward(self, x):
            return self.out(x).unflatten(1, self.shape)

    def sequence():
        return Head((3, 5))

    def segmentation():
        return Head((2, 6, 6))
"""


@pytest.mark.parametrize(("factory", "labels"), [("sequence", "4:int64"), ("sequence", "4,1:int64"),
                                                 ("segmentation", "4:int64")])
def test_pytorch_output_with_extra_axes_against_per_sample_labels(write, factory, labels):
    result = run("check", f"{write(TORCH_OUTPUT)}:{factory}", "--input", "4,8", "--loss", "CrossEntropyLoss",
                 "--labels", labels)
    assert result.exit_code == 1, result.output
    assert "`torch.nn.CrossEntropyLoss` raises RuntimeError" in result.output   # PyTorch's own words


KERAS_OUTPUTS = """
    import keras
    from keras import layers

    def conv1d_without_flatten():   # (B, 148, 9)
        return keras.Sequential([keras.Input((150, 4)), layers.Conv1D(16, 3), layers.Dense(9, activation="softmax")])

    def wide_sequence():            # (B, 826, 23)
        return keras.Sequential([keras.Input((826, 4)), layers.Dense(23, activation="softmax")])

    def per_sample():               # (B, 8)
        return keras.Sequential([keras.Input((12,)), layers.Dense(8, activation="softmax")])

    def map_output():               # (B, 6, 6, 2)
        return keras.Sequential([keras.Input((8, 8, 3)), layers.Conv2D(2, 3, activation="softmax")])
"""


@pytest.mark.parametrize(("factory", "shape", "loss", "labels"), [
    ("conv1d_without_flatten", "4,150,4", "categorical_crossentropy", "4,9"),
    ("wide_sequence", "4,826,4", "categorical_crossentropy", "4,23"),
    ("per_sample", "4,12", "categorical_crossentropy", "4,1452,8"),
    ("map_output", "4,8,8,3", "categorical_crossentropy", "4,2"),
    ("map_output", "4,8,8,3", "sparse_categorical_crossentropy", "4:int64"),
])
def test_keras_outputs_and_labels_the_loss_rejects(write, factory, shape, loss, labels):
    pytest.importorskip("keras")
    result = run("check", f"{write(KERAS_OUTPUTS, 'keras_models.py')}:{factory}", "--input", shape, "--loss", loss,
                 "--labels", labels)
    assert result.exit_code == 1, result.output
    assert "error[" in result.output


def test_ignoring_explanations_never_hides_the_mismatch(write):
    """Ignore whatever explains the mismatch, one rule after another: the next explanation takes its place, and
    last the catch-all with the framework's own verdict. Only ignoring SC100 too silences it."""
    import json

    target = f"{write(TORCH_OUTPUT)}:sequence"
    args = ["check", target, "--input", "4,8", "--loss", "MSELoss", "--labels", "4,1,5"]
    ignored: list[str] = []
    while True:
        result = run(*args, "--format", "json", *[f"--ignore={code}" for code in ignored])
        assert result.exit_code == 1, f"ignoring {ignored} hid the mismatch"
        entry = json.loads(result.output)["results"][0]
        assert entry["loss_check"]["status"] == "broadcasts"
        codes = [finding["rule"] for finding in entry["findings"] if finding["severity"] == "error"]
        if codes == ["SC100"]:
            break
        ignored += codes
    assert ignored, "a specific rule should explain this broadcast first"
    assert "broadcast to [4, 3, 5]" in entry["findings"][0]["message"]
    assert run(*args, f"--ignore={','.join(ignored)},SC100").exit_code == 0


def test_mask_ids_divided_by_255_under_a_class_index_loss(write, tmp_path):
    code = """
        from torch import nn

        def build():
            return nn.Conv2d(3, 4, 1)
    """
    masks = np.random.default_rng(0).integers(0, 4, (2, 8, 8)) / 255.0
    np.save(tmp_path / "masks.npy", masks.astype("float32"))
    result = run("check", f"{write(code)}:build", "--input", "2,3,8,8", "--loss", "CrossEntropyLoss",
                 "--labels-file", "masks.npy")
    assert result.exit_code == 1, result.output
    assert "error[SC116]" in result.output and "divided by 255" in result.output
    assert "labels = (labels * 255).round().long()" in result.output


PACKED = """
    import torch
    from torch import nn
    from torch.nn.utils.rnn import pack_padded_sequence

    class Tagger(nn.Module):
        def __init__(self, classes):
            super().__init__()
            self.emb = nn.Embedding(100, 16)
            self.rnn = nn.LSTM(16, 32, batch_first=True)
            self.fc = nn.Linear(32, classes)

        def forward(self, ids, lengths):
            _, (hidden, _) = self.rnn(pack_padded_sequence(self.emb(ids), lengths, batch_first=True))
            return self.fc(hidden[-1])

    def build():
        return Tagger(1000)

    def build_with_inputs():
        return Tagger(1000), (torch.randint(1, 100, (4, 12)), torch.tensor([12, 9, 7, 3]))
"""


def test_values_the_forward_reads_come_from_an_input_file(write, tmp_path):
    np.savez(tmp_path / "inputs.npz", np.ones((4, 12), dtype="int64"), np.array([12, 9, 7, 3]))
    result = run("check", f"{write(PACKED)}:build", "--input-file", "inputs.npz", "--loss", "BCEWithLogitsLoss",
                 "--labels", "4,1")
    assert result.exit_code == 1, result.output
    assert "error[SC101]" in result.output and "(input [4, 12], [4]; output [4, 1000]" in result.output


def test_values_the_forward_reads_come_from_the_factory(write):
    result = run("check", f"{write(PACKED)}:build_with_inputs", "--loss", "BCEWithLogitsLoss", "--labels", "4,1")
    assert result.exit_code == 1, result.output
    assert "error[SC101]" in result.output


def test_random_values_that_break_the_forward_are_not_blamed_on_the_model(write):
    result = run("check", f"{write(PACKED)}:build", "--input", "4,12:int64", "--input", "4:int64",
                 "--loss", "BCEWithLogitsLoss", "--labels", "4,1")
    assert result.exit_code == 0, result.output
    assert "warning[SC901] with random input values" in result.output and "--input-file" in result.output


def test_input_file_errors_are_one_line_usage_errors(write, tmp_path):
    (tmp_path / "inputs.npz").write_bytes(b"not an archive")
    target = f"{write(PACKED)}:build"
    for args in (["--input-file", "missing.npz"], ["--input-file", "inputs.npz"],
                 ["--input", "4,12", "--input-file", "inputs.npz"]):
        result = run("check", target, *args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output


LAYERDROP = """
    import torch
    from torch import nn

    class Encoder(nn.Module):
        def __init__(self, layers=6, drop=0.3):
            super().__init__()
            self.layers = nn.ModuleList(nn.Linear(16, 16) for _ in range(layers))
            self.drop = drop
            self.head = nn.Linear(16, 4)

        def forward(self, x):
            for layer in self.layers:
                if self.training and torch.rand(()).item() < self.drop:   # LayerDrop
                    continue
                x = torch.relu(layer(x))
            return self.head(x)

    def build():
        return Encoder()
"""


def test_random_layer_drop_never_changes_the_verdict(write):
    target = f"{write(LAYERDROP)}:build"
    outputs = {run("check", target, "--input", "8,16", "--loss", "CrossEntropyLoss", "--labels", "8:int64").output
               for _ in range(12)}
    assert len(outputs) == 1
    assert "no findings" in outputs.pop()


def test_a_configured_target_takes_its_input_file(write, tmp_path):
    write(PACKED)
    np.savez(tmp_path / "inputs.npz", np.ones((4, 12), dtype="int64"), np.array([12, 9, 7, 3]))
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent("""
        [[tool.shapecheck.targets]]
        target = "model.py:build"
        input-file = "inputs.npz"
        loss = "BCEWithLogitsLoss"
        labels = "4,1"
    """))
    result = run("check")
    assert result.exit_code == 1, result.output
    assert "error[SC101]" in result.output and "(input [4, 12], [4]; output [4, 1000]" in result.output
