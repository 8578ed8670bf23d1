"""Parsing what users type: shape specs, loss names, label files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from shapecheck.errors import ShapecheckError
from shapecheck.labels import from_array, from_file, from_spec
from shapecheck.losses import resolve_loss
from shapecheck.shapes import parse_spec


@pytest.mark.parametrize("text, expected", [
    ("16,3,224,224", ((16, 3, 224, 224), None)),
    ("16x3x224x224", ((16, 3, 224, 224), None)),
    ("(8, 128):int64", ((8, 128), "int64")),
    ("32:long", ((32,), "int64")),
    ("4,1:float", ((4, 1), "float32")),
])
def test_shape_specs(text, expected):
    assert parse_spec(text) == expected


@pytest.mark.parametrize("text", ["", "16,,a", "16,0", "3.5", "16:complex"])
def test_bad_shape_specs(text):
    with pytest.raises(ShapecheckError):
        parse_spec(text)


@pytest.mark.parametrize("name, canonical", [
    ("BCEWithLogitsLoss", "BCEWithLogitsLoss"), ("bce-with-logits", "BCEWithLogitsLoss"),
    ("bce_with_logits", "BCEWithLogitsLoss"), ("nn.CrossEntropyLoss()", "CrossEntropyLoss"), ("ce", "CrossEntropyLoss"),
    ("nll", "NLLLoss"), ("MSE", "MSELoss"), ("mae", "L1Loss"), ("smooth-l1", "SmoothL1Loss"), ("bce", "BCELoss"),
])
def test_loss_aliases(name, canonical):
    assert resolve_loss(name).name == canonical


def test_label_spec_defaults_to_the_loss_dtype():
    assert from_spec("16", resolve_loss("CrossEntropyLoss").target_dtype).dtype == "int64"
    assert from_spec("16,1", resolve_loss("BCEWithLogitsLoss").target_dtype).dtype == "float32"


def test_label_statistics():
    info = from_array(np.array([[1, 0, 0], [0, 0, 0], [1, 1, 0]]), "test")
    assert info.shape == (3, 3) and info.dtype == "int64"
    stats = info.stats
    rows = stats.rows(1)
    assert rows.zero_rows == 1 and rows.multi_hot_rows == 1 and not rows.first_column_empty
    assert stats.distinct == [0.0, 1.0] and stats.rows(-1) == rows
    rgb = from_array(np.repeat(np.array([[[[0, 1]]]]), 3, axis=1), "mask").stats
    assert rgb.channels_identical


@pytest.mark.parametrize("suffix", [".npy", ".npz", ".pt"])
def test_label_files(tmp_path, suffix):
    path = tmp_path / f"labels{suffix}"
    values = np.array([0, 2, 1, 2])
    if suffix == ".npy":
        np.save(path, values)
    elif suffix == ".npz":
        np.savez(path, labels=values, weights=np.ones(4))
    else:
        torch.save({"labels": torch.from_numpy(values)}, path)
    info = from_file(str(path))
    assert info.shape == (4,) and info.stats.maximum == 2


def test_string_labels_are_summarised_without_stats():
    info = from_array(np.array(["cat", "dog"]), "names")
    assert info.dtype == "str" and info.stats is None


def test_npz_with_several_arrays_holds_labels_by_output_name(tmp_path):
    path = tmp_path / "data.npz"
    np.savez(path, age=np.zeros(2), gender=np.ones((2, 1)))
    labels = from_file(str(path))
    assert {name: info.shape for name, info in labels.items()} == {"age": (2,), "gender": (2, 1)}
