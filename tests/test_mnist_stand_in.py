import sys
from pathlib import Path

import numpy as np

from course_utils import data

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project root, for tools/
from helpers import make_test_split_folder  # noqa: E402

from tools.mnist_stand_in import build_stand_in  # noqa: E402


def test_stand_in_is_read_as_mnist_through_torchvision(tmp_path, monkeypatch):
    split = make_test_split_folder(tmp_path / "split", n=10)
    build_stand_in(split, tmp_path / "data", copies=3)
    monkeypatch.delenv("COURSE_MNIST_TEST_DIR", raising=False)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
    train = data.load_dataset("auto", "train", verbose=False)
    test = data.load_dataset("auto", "test", verbose=False)
    assert train.name == "mnist" and "torchvision" in train.source
    assert len(train) == 30 and len(test) == 10
    assert np.array_equal(train.labels[:10].numpy(), train.labels[20:].numpy())
