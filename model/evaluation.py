"""Evaluating a network on a dataset: matching a weights file with a split, the one-line
summary, the per-image predictions file, and the note when a file was trained on another
dataset."""

import numpy as np

from . import data
from .errors import UserError
from .network import Network, atomic_write

__all__ = ["load_matching", "trained_elsewhere", "summarize", "write_predictions",
           "PREDICTIONS_HEADER"]

PREDICTIONS_HEADER = "index,label,predicted,decision_step,fired"


def load_matching(weights, dataset, split, data_dir=None):
    """Load a weights file and a dataset split, checking that their input sizes agree.

    Returns ``(network, images, labels)``: uint8 ``(n, n_in)`` images, ``(n,)`` labels.
    """
    network = Network.load(weights)
    images, labels = data.load(dataset, split, data_dir)
    if network.n_inputs != images.shape[1]:
        raise UserError(f"{weights}: network takes {network.n_inputs} inputs but {dataset} "
                        f"images have {images.shape[1]} pixels")
    if network.n_classes < int(labels.max()) + 1:
        raise UserError(f"{weights}: network has {network.n_classes} outputs, {dataset} has "
                        f"{int(labels.max()) + 1} classes")
    return network, images, labels


def trained_elsewhere(network, weights, dataset):
    """A one-line note when ``network``'s metadata names a dataset other than ``dataset``
    (a network runs on any images of its input size, usually to no purpose); else ``None``."""
    trained_on = network.metadata.get("dataset")
    if trained_on is None or trained_on == dataset:
        return None
    return f"{weights} was trained on {trained_on}, not {dataset}"


def summarize(result, labels):
    """The one-line summary of an evaluation (``bs4nn evaluate``): strict and lenient accuracy,
    mean decision step, images with no output spike."""
    return (f"strict accuracy {result.strict_accuracy(labels):.4f} "
            f"(lenient, paper-style {result.lenient_accuracy(labels):.4f}), "
            f"mean decision step {np.mean(result.decision_step):.1f}, "
            f"no output spike {int(np.sum(~result.fired))}/{labels.size}")


def write_predictions(path, labels, predicted, decision_step, fired):
    """Write the predictions CSV, one row per image (also written by the RTL testbench)."""
    with atomic_write(path, "w") as f:
        f.write(PREDICTIONS_HEADER + "\n")
        for row in zip(range(labels.size), labels, predicted, decision_step, fired,
                       strict=True):
            f.write(",".join(str(int(v)) for v in row) + "\n")
