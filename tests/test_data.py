"""Dataset loaders: the real datasets, IDX parsing, and corrupted, truncated or foreign files."""

import gzip

import numpy as np
import pytest

from bs4nn.model import data
from bs4nn.model.errors import UserError


def idx_bytes(array):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim])
    header += b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.tobytes()


@pytest.mark.parametrize("dataset", data.DATASETS)
def test_real_datasets(dataset):
    images, labels = data.load(dataset, "test")
    assert images.shape == (10_000, 784) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == data.TEST_LABEL_COUNTS[dataset]
    train, _ = data.load(dataset, "train")
    validation, _ = data.load(dataset, "validation")
    assert train.shape[0] == 50_000 and validation.shape[0] == 10_000
    assert images.max() == 255


def test_mnist_pixels_are_exact_bytes():
    images, labels = data.load("mnist", "test")
    # The first MNIST test image is a 7; its brightest pixels are 255.
    assert labels[0] == 7
    assert images[0].reshape(28, 28)[7, 6:10].tolist() == [84, 185, 159, 151]


def test_idx_round_trip(tmp_path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a").write_bytes(idx_bytes(array))
    (tmp_path / "a.gz").write_bytes(gzip.compress(idx_bytes(array)))
    assert np.array_equal(data.read_idx(tmp_path / "a"), array)
    assert np.array_equal(data.read_idx(tmp_path / "a.gz"), array)


@pytest.mark.parametrize(("content", "message"), [
    (idx_bytes(np.zeros((2, 3)))[:-1], "truncated or corrupted"),
    (idx_bytes(np.zeros((2, 3))) + b"x", "truncated or corrupted"),
    (b"\x01\x02\x08\x01" + b"\0" * 8, "bad magic number"),
    (b"\0\0\x0d\x01\0\0\0\x01" + b"\0" * 4, "not unsigned byte"),
    (b"\0\0\x08\x03\0\0", "truncated IDX header"),
    (b"", "bad magic number"),
])
def test_bad_idx_files(tmp_path, content, message):
    path = tmp_path / "bad"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message) as error:
        data.read_idx(path)
    assert str(path) in str(error.value)


def test_corrupted_gzip(tmp_path):
    path = tmp_path / "bad.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(5)))[:-6])
    with pytest.raises(UserError, match="cannot read"):
        data.read_idx(path)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("BS4NN_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("BS4NN_DATA_DIR", raising=False)
    return tmp_path / "cache"


def write_idx_dir(directory, dataset):
    directory.mkdir()
    parts = {split: data.load(dataset, split) for split in data.SPLITS}
    train_images = np.concatenate([parts["train"][0], parts["validation"][0]])
    train_labels = np.concatenate([parts["train"][1], parts["validation"][1]])
    files = {"train_images": train_images.reshape(-1, 28, 28), "train_labels": train_labels,
             "test_images": parts["test"][0].reshape(-1, 28, 28),
             "test_labels": parts["test"][1]}
    for key, array in files.items():
        (directory / data.IDX_FILES[key]).write_bytes(idx_bytes(array))
    return parts


def test_data_dir_with_official_layout(tmp_path, isolated_cache):
    parts = write_idx_dir(tmp_path / "idx", "mnist")
    cached = set(isolated_cache.iterdir())
    images, labels = data.load("mnist", "test", data_dir=tmp_path / "idx")
    assert np.array_equal(images, parts["test"][0])
    assert np.array_equal(labels, parts["test"][1])
    assert len(set(isolated_cache.iterdir()) - cached) == 1


def test_data_dir_problems(tmp_path, isolated_cache):
    with pytest.raises(UserError, match="data directory does not exist"):
        data.load("mnist", "test", data_dir=tmp_path / "nowhere")
    write_idx_dir(tmp_path / "idx", "mnist")
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="t10k-labels-idx1-ubyte: missing"):
        data.load("mnist", "test", data_dir=tmp_path / "idx")


def test_wrong_labels_are_detected_and_not_cached(tmp_path, isolated_cache):
    write_idx_dir(tmp_path / "idx", "mnist")
    labels = np.zeros(10_000, dtype=np.uint8)
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(labels))
    cached = set(isolated_cache.iterdir())
    with pytest.raises(UserError, match="test label counts"):
        data.load("mnist", "test", data_dir=tmp_path / "idx")
    assert set(isolated_cache.iterdir()) == cached


def test_damaged_cache_is_rebuilt(isolated_cache):
    images, _ = data.load("mnist", "test")
    (cache,) = isolated_cache.iterdir()
    cache.write_bytes(cache.read_bytes()[:1000])
    again, _ = data.load("mnist", "test")
    assert np.array_equal(images, again)


def test_unverified_pickle_is_refused(isolated_cache, monkeypatch):
    monkeypatch.setattr(data, "MNIST_PICKLE_SHA256", "0" * 64)
    with pytest.raises(UserError, match="refusing to unpickle"):
        data.load("mnist", "test")


def test_unknown_names():
    with pytest.raises(UserError, match="unknown dataset 'cifar'"):
        data.load("cifar", "test")
    with pytest.raises(UserError, match="unknown split 'dev'"):
        data.load("mnist", "dev")
