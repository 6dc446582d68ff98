"""The network and its versioned weights file (``.npz``, loadable with ``allow_pickle=False``).

File layout (format version 1):

``format_version``      int, 1
``layer_sizes``         int64 ``(n_layers + 1,)``: ``[n_in, n_hidden..., n_out]``
``layer{k}_bits``       uint8 ``(n_out_k, ceil(n_in_k / 8))``: weight bits, see :mod:`.packing`
``layer{k}_thresholds`` int32 ``(n_out_k,)``: a neuron fires when its potential exceeds this
``max_step``            int, 255: the last time step; pixel ``p`` spikes at ``max_step - p``
``metadata``            0-d unicode array holding a JSON object (dataset, accuracies, command, seed)
"""

import importlib.resources
import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import packing
from .errors import UserError

__all__ = ["Layer", "Network", "FORMAT_VERSION", "MAX_STEP", "NO_SPIKE", "SHIPPED_WEIGHTS",
           "DEFAULT_WEIGHTS", "atomic_write"]

FORMAT_VERSION = 1
#: Last time step; steps run 0..MAX_STEP.
MAX_STEP = 255
#: Spike time meaning "did not fire".
NO_SPIKE = MAX_STEP + 1
#: Inputs per layer, so that every potential fits in int16.
MAX_INPUTS = 2**15 - 1
#: The shipped trained networks by dataset: package data of ``bs4nn.weights`` (the repository's
#: ``weights/`` folder), so they are found from any folder and after ``pip install .``.
SHIPPED_WEIGHTS = {dataset: Path(importlib.resources.files("bs4nn.weights")) / name
                   for dataset, name in (("mnist", "mnist-784-600-10.npz"),
                                         ("fashion-mnist", "fashion-mnist-784-1000-10.npz"))}
#: The default network of every command: the shipped MNIST one.
DEFAULT_WEIGHTS = SHIPPED_WEIGHTS["mnist"]
#: How every zip archive (an ``.npz`` is one) begins.
ZIP_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True)
class Layer:
    """One fully connected layer of IF neurons with binary weights.

    Parameters
    ----------
    signs : int8 ``(n_out, n_in)`` of ±1
    thresholds : int32 ``(n_out,)``, each in ``0 .. n_in - 1``
    """

    signs: np.ndarray
    thresholds: np.ndarray

    def __post_init__(self):
        signs = np.asarray(self.signs)
        thresholds = np.asarray(self.thresholds)
        if signs.ndim != 2 or signs.size == 0:
            raise UserError(f"layer weights must be a non-empty 2-D array, got shape {signs.shape}")
        if not np.all((signs == 1) | (signs == -1)):
            raise UserError("layer weights must all be +1 or -1")
        n_out, n_in = signs.shape
        if n_in > MAX_INPUTS:
            raise UserError(f"a layer takes at most {MAX_INPUTS} inputs, got {n_in}")
        if thresholds.shape != (n_out,):
            raise UserError(f"layer of {n_out} neurons has {thresholds.shape} thresholds")
        if not np.issubdtype(thresholds.dtype, np.integer):
            raise UserError("thresholds must be integers")
        if thresholds.min() < 0 or thresholds.max() >= n_in:
            raise UserError(f"thresholds must lie in 0..{n_in - 1} (a potential of {n_in} "
                            f"inputs must be able to exceed them), got "
                            f"{thresholds.min()}..{thresholds.max()}")
        object.__setattr__(self, "signs", signs.astype(np.int8))
        object.__setattr__(self, "thresholds", thresholds.astype(np.int32))

    @property
    def n_in(self):
        return self.signs.shape[1]

    @property
    def n_out(self):
        return self.signs.shape[0]

    @property
    def bits(self):
        """Boolean ``(n_out, n_in)`` weight bits (True for +1)."""
        return packing.signs_to_bits(self.signs)


@dataclass(frozen=True)
class Network:
    """A BS4NN network: a list of layers, the last being the output layer."""

    layers: tuple
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        layers = tuple(self.layers)
        if not layers:
            raise UserError("a network needs at least one layer")
        for k in range(1, len(layers)):
            if layers[k].n_in != layers[k - 1].n_out:
                raise UserError(f"layer {k} takes {layers[k].n_in} inputs but layer {k - 1} "
                                f"has {layers[k - 1].n_out} neurons")
        object.__setattr__(self, "layers", layers)

    @property
    def sizes(self):
        """``[n_in, n_hidden..., n_out]``."""
        return [self.layers[0].n_in] + [layer.n_out for layer in self.layers]

    @property
    def n_inputs(self):
        return self.layers[0].n_in

    @property
    def n_classes(self):
        return self.layers[-1].n_out

    def describe(self):
        return "-".join(str(n) for n in self.sizes)

    def save(self, path):
        """Write the weights file atomically (temporary file, then rename)."""
        arrays = {
            "format_version": np.array(FORMAT_VERSION),
            "layer_sizes": np.array(self.sizes, dtype=np.int64),
            "max_step": np.array(MAX_STEP),
            "metadata": np.array(json.dumps(self.metadata, sort_keys=True)),
        }
        for k, layer in enumerate(self.layers):
            arrays[f"layer{k}_bits"] = packing.pack_rows(layer.bits)
            arrays[f"layer{k}_thresholds"] = layer.thresholds
        with atomic_write(path, "wb") as f:
            np.savez_compressed(f, **arrays)

    @classmethod
    def load(cls, path):
        """Read and validate a weights file; any problem raises :class:`UserError` naming it."""
        path = os.fspath(path)
        try:
            with open(path, "rb") as f:
                # np.load takes anything that is neither .npy nor zip for a pickle.
                is_zip = f.read(len(ZIP_MAGIC)) == ZIP_MAGIC
                if is_zip:
                    f.seek(0)
                    with np.load(f, allow_pickle=False) as archive:
                        arrays = {name: archive[name] for name in archive.files}
        except FileNotFoundError:
            raise UserError(f"{path}: no such weights file") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a directory, not a weights file") from None
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
            raise UserError(f"{path}: not a readable weights file ({error})") from None
        if not is_zip:
            raise UserError(f"{path}: not a readable weights file (not a zip archive, as an "
                            f".npz file is)")
        try:
            return cls._from_arrays(arrays)
        except UserError as error:
            raise UserError(f"{path}: {error}") from None

    @classmethod
    def _from_arrays(cls, arrays):
        missing = {"format_version", "layer_sizes"} - arrays.keys()
        if missing:
            raise UserError(f"not a bs4nn weights file (missing {', '.join(sorted(missing))})")
        version = int(arrays["format_version"])
        if version != FORMAT_VERSION:
            raise UserError(f"unknown format version {version} "
                            f"(this bs4nn reads {FORMAT_VERSION})")
        max_step = int(arrays.get("max_step", MAX_STEP))
        if max_step != MAX_STEP:
            raise UserError(f"max_step {max_step} is not supported (only {MAX_STEP})")
        sizes = [int(n) for n in arrays["layer_sizes"]]
        if len(sizes) < 2 or min(sizes) < 1:
            raise UserError(f"bad layer_sizes {sizes}")
        layers = []
        for k in range(len(sizes) - 1):
            n_in, n_out = sizes[k], sizes[k + 1]
            bits, thresholds = arrays.get(f"layer{k}_bits"), arrays.get(f"layer{k}_thresholds")
            if bits is None or thresholds is None:
                raise UserError(f"layer {k} is missing")
            if bits.dtype != np.uint8 or bits.shape != (n_out, -(-n_in // 8)):
                raise UserError(f"layer {k} bits have shape {bits.shape} and type {bits.dtype}, "
                                f"expected uint8 {(n_out, -(-n_in // 8))}")
            signs = packing.bits_to_signs(packing.unpack_rows(bits, n_in))
            try:
                layers.append(Layer(signs, thresholds))
            except UserError as error:
                raise UserError(f"layer {k}: {error}") from None
        try:
            metadata = json.loads(str(arrays.get("metadata", "{}")))
        except json.JSONDecodeError:
            raise UserError("metadata is not valid JSON") from None
        return cls(tuple(layers), metadata)


class atomic_write:
    """Context manager: open a temporary file beside ``path``; rename it over ``path`` on success.

    On an exception the temporary file is removed, so no partial output is ever left.
    """

    def __init__(self, path, mode="w"):
        self.path, self.mode = os.fspath(path), mode

    def __enter__(self):
        directory = os.path.dirname(os.path.abspath(self.path))
        try:
            os.makedirs(directory, exist_ok=True)
            fd, self.temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-",
                                                  suffix=os.path.basename(self.path))
        except OSError as error:
            raise UserError(f"{self.path}: cannot write ({error.strerror})") from None
        self.file = os.fdopen(fd, self.mode)
        return self.file

    def __exit__(self, kind, value, traceback):
        self.file.close()
        if kind is None:
            # mkstemp creates 0600; give the file the mode a plain open() would.
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(self.temporary, 0o666 & ~umask)
            os.replace(self.temporary, self.path)
        else:
            os.unlink(self.temporary)
        return False
