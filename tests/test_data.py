import functools
import hashlib
import http.server
import threading

import numpy as np
import pytest
import torch
from helpers import make_test_split_folder, make_tiny_mnist, write_idx

from course_utils import data


@pytest.fixture
def no_shared_mnist(monkeypatch):
    monkeypatch.delenv(data.MNIST_TEST_SPLIT_VARIABLE, raising=False)


@pytest.fixture
def unreachable_mirrors(monkeypatch):
    from torchvision import datasets

    # Port 9 on localhost refuses at once: a download that cannot succeed, without the internet.
    for cls in (datasets.MNIST, datasets.FashionMNIST):
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])


def test_digits_follow_the_convention():
    train = data.load_dataset("digits", "train", verbose=False)
    test = data.load_dataset("digits", "test", verbose=False)
    assert train.images.shape == (1437, 1, 8, 8) and test.images.shape == (360, 1, 8, 8)
    assert train.images.dtype == torch.float32 and train.labels.dtype == torch.int64
    assert 0.0 <= train.images.min() and train.images.max() == 1.0
    assert set(test.labels.tolist()) == set(range(10))
    assert train.image_shape == (1, 8, 8)


def test_torchvision_mnist_read_from_a_tiny_idx_folder(tmp_path, monkeypatch, no_shared_mnist):
    make_tiny_mnist(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    train = data.load_dataset("mnist", "train", verbose=False)
    test = data.load_dataset("mnist", "test", verbose=False)
    assert train.images.shape == (12, 1, 28, 28) and test.images.shape == (6, 1, 28, 28)
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    assert float(train.images.max()) <= 1.0 and float(train.images.min()) >= 0.0


def test_fashion_mnist_uses_its_own_folder_and_class_names(tmp_path, monkeypatch):
    make_tiny_mnist(tmp_path, folder="FashionMNIST")
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    fashion = data.load_dataset("fashion-mnist", "test", verbose=False)
    assert len(fashion) == 6 and fashion.class_names[9] == "Ankle boot"


def test_auto_prefers_mnist_on_disk_and_says_why(tmp_path, monkeypatch, capsys, no_shared_mnist):
    make_tiny_mnist(tmp_path)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    chosen = data.load_dataset("auto")
    assert chosen.name == "mnist"
    assert "MNIST found in" in capsys.readouterr().out


def test_auto_falls_back_to_digits_when_download_fails(
    tmp_path, monkeypatch, capsys, no_shared_mnist, unreachable_mirrors
):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    chosen = data.load_dataset("auto")
    assert chosen.name == "digits"
    assert "could not be downloaded" in capsys.readouterr().out


def test_failed_download_explains_the_offline_options(tmp_path, monkeypatch, no_shared_mnist, unreachable_mirrors):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))  # an empty folder
    with pytest.raises(data.DataUnavailableError) as error:
        data.load_dataset("mnist")
    message = str(error.value)
    assert "COURSE_DATASET=digits" in message and "COURSE_DATA_DIR" in message
    assert "Traceback" not in message


def test_corrupt_file_is_reported_with_a_fix(tmp_path, monkeypatch, no_shared_mnist):
    raw = make_tiny_mnist(tmp_path)
    truncated = (raw / "train-images-idx3-ubyte").read_bytes()[:500]
    (raw / "train-images-idx3-ubyte").write_bytes(truncated)
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="damaged: delete"):
        data.load_dataset("mnist", "train")


def test_unknown_name_and_split_are_rejected():
    with pytest.raises(ValueError, match="mnist, fashion-mnist, digits, mnist-test-split"):
        data.load_dataset("cifar")
    with pytest.raises(ValueError, match="split"):
        data.load_dataset("digits", "validation")


def test_test_split_is_its_own_data_set_cut_into_disjoint_train_and_test(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MNIST_TEST_DIR", str(make_test_split_folder(tmp_path / "split")))
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(data, "TEST_SPLIT_TRAIN_SIZE", 7)
    train = data.load_dataset("mnist-test-split", "train", verbose=False)
    test = data.load_dataset("mnist-test-split", "test", verbose=False)
    assert train.labels.tolist() == list(range(7)) and test.labels.tolist() == [7, 8, 9]
    # Named for what it is, so that its checkpoints never mix with those of the real MNIST.
    assert train.name == "mnist-test-split" and "first 7" in train.source and "last 3" in test.source


def test_auto_uses_the_test_split_only_when_the_variable_names_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("COURSE_OFFLINE", "1")
    monkeypatch.delenv("COURSE_MNIST_TEST_DIR", raising=False)
    # Nothing outside the project is looked at by default (development machines keep a split beside it).
    assert data.load_dataset("auto", verbose=False).name == "digits"
    monkeypatch.setenv("COURSE_MNIST_TEST_DIR", str(make_test_split_folder(tmp_path / "split")))
    chosen = data.load_dataset("auto")
    assert chosen.name == "mnist-test-split" and len(chosen) == 10  # fewer than 8,000: all of them are "train"
    assert "COURSE_MNIST_TEST_DIR names a folder" in capsys.readouterr().out


def test_test_split_variable_naming_a_wrong_folder_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_MNIST_TEST_DIR", str(tmp_path))
    with pytest.raises(data.DataUnavailableError, match="lacks t10k-images"):
        data.load_dataset("auto")
    monkeypatch.delenv("COURSE_MNIST_TEST_DIR")
    with pytest.raises(data.DataUnavailableError, match="needs COURSE_MNIST_TEST_DIR"):
        data.load_dataset("mnist-test-split")


def test_mnist_is_downloaded_through_torchvision(tmp_path, monkeypatch, capsys, no_shared_mnist):
    # A local web server plays the MNIST mirror: the real download code runs, checksums and all, offline.
    served = tmp_path / "mirror"
    served.mkdir()
    resources = []
    rng = np.random.default_rng(1)
    for prefix, n in (("train", 20), ("t10k", 5)):
        for kind, array in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", np.arange(n) % 10)):
            name = f"{prefix}-{kind}-ubyte.gz"
            write_idx(served / name, array, compress=True)
            resources.append((name, hashlib.md5((served / name).read_bytes()).hexdigest()))
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        from torchvision import datasets

        monkeypatch.setattr(datasets.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
        monkeypatch.setattr(datasets.MNIST, "resources", resources)
        monkeypatch.setenv("COURSE_DATA_DIR", str(tmp_path / "data"))
        chosen = data.load_dataset("auto", "train")
        test = data.load_dataset("auto", "test", verbose=False)
    finally:
        server.shutdown()
    assert chosen.name == "mnist" and chosen.images.shape == (20, 1, 28, 28) and len(test) == 5
    assert "MNIST was downloaded" in capsys.readouterr().out
    assert (tmp_path / "data" / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def test_read_idx_checks_the_file(tmp_path):
    good = tmp_path / "good.gz"
    write_idx(good, np.ones((2, 3, 3)), compress=True)
    assert data.read_idx(good).shape == (2, 3, 3)
    (tmp_path / "bad").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="magic"):
        data.read_idx(tmp_path / "bad")
    short = tmp_path / "short"
    write_idx(short, np.ones((2, 3, 3)))
    short.write_bytes(short.read_bytes()[:-4])
    with pytest.raises(ValueError, match="truncated"):
        data.read_idx(short)


def test_loader_yields_whole_shuffled_batches_repeatably():
    images = torch.arange(10.0).view(10, 1, 1, 1)
    labels = torch.arange(10)
    first = [b[1].tolist() for b in data.make_loader(images, labels, batch_size=4, seed=1)]
    again = [b[1].tolist() for b in data.make_loader(images, labels, batch_size=4, seed=1)]
    assert first == again and [len(b) for b in first] == [4, 4, 2]
    assert sorted(sum(first, [])) == list(range(10)) and sum(first, []) != list(range(10))
    ordered = [b[1].tolist() for b in data.make_loader(images, labels, batch_size=4, shuffle=False)]
    assert sum(ordered, []) == list(range(10))


def test_signed_conversion_round_trips():
    x = torch.rand(4, 1, 8, 8)
    assert torch.allclose(data.to_unit(data.to_signed(x)), x)
    assert data.to_signed(x).min() >= -1 and data.to_unit(torch.tensor([3.0])).item() == 1.0


def test_imagedata_validates_shapes():
    with pytest.raises(ValueError, match="N x 1 x H x W"):
        data.ImageData(torch.zeros(3, 8, 8), torch.zeros(3, dtype=torch.long), "digits", "test")
    with pytest.raises(ValueError, match="labels"):
        data.ImageData(torch.zeros(3, 1, 8, 8), torch.zeros(2, dtype=torch.long), "digits", "test")
