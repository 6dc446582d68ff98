"""Command-line glue for the golden model: ``bs4nn data``, ``evaluate``, ``export``,
``import-reference`` and ``raster``. Each ``add_X_arguments``/``run_X`` pair is called by
:mod:`bs4nn.cli`."""

import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np

from . import data, packing
from .errors import UserError
from .inference import infer
from .network import MAX_STEP, NO_SPIKE, Layer, Network, atomic_write

DEFAULT_WEIGHTS = "weights/mnist-784-600-10.npz"


def _add_data_arguments(parser, splits=True):
    parser.add_argument("--dataset", choices=data.DATASETS, default="mnist")
    if splits:
        parser.add_argument("--split", choices=data.SPLITS, default="test")
    parser.add_argument("--data-dir", help="directory with the four standard IDX files "
                        "(default: $BS4NN_DATA_DIR, else the packaged dataset)")


def load_matching(weights, dataset, split, data_dir=None):
    """Load a weights file and a dataset split, checking that their input sizes agree."""
    network = Network.load(weights)
    images, labels = data.load(dataset, split, data_dir)
    if network.n_inputs != images.shape[1]:
        raise UserError(f"{weights}: network takes {network.n_inputs} inputs but {dataset} "
                        f"images have {images.shape[1]} pixels")
    if network.n_classes < int(labels.max()) + 1:
        raise UserError(f"{weights}: network has {network.n_classes} outputs, {dataset} has "
                        f"{int(labels.max()) + 1} classes")
    return network, images, labels


# ---- bs4nn data -------------------------------------------------------------------------

def add_data_arguments(parser):
    parser.add_argument("--check", action="store_true",
                        help="load every split of every dataset and verify it (the default)")
    parser.add_argument("--dataset", choices=data.DATASETS, action="append",
                        help="only this dataset (repeatable)")
    parser.add_argument("--data-dir", help="directory with the four standard IDX files")


def run_data(args):
    for dataset in args.dataset or data.DATASETS:
        for line in data.dataset_summary(dataset, args.data_dir):
            print(line)
    print(f"all checks passed (cache: {data.cache_dir()})")
    return 0


# ---- bs4nn evaluate ---------------------------------------------------------------------

def add_evaluate_arguments(parser):
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    _add_data_arguments(parser)
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--predictions", help="write a CSV: index,label,predicted,"
                        "decision_step,fired")


def summarize(result, labels):
    """The one-line summary used by evaluate, training and the simulation runner."""
    return (f"strict accuracy {result.strict_accuracy(labels):.4f} "
            f"(lenient, paper-style {result.lenient_accuracy(labels):.4f}), "
            f"mean decision step {np.mean(result.decision_step):.1f}, "
            f"no output spike {int(np.sum(~result.fired))}/{labels.size}")


def write_predictions(path, labels, predicted, decision_step, fired):
    """Write the predictions CSV (also used by the RTL simulation runner)."""
    with atomic_write(path, "w") as f:
        f.write("index,label,predicted,decision_step,fired\n")
        for row in zip(range(labels.size), labels, predicted, decision_step, fired,
                       strict=True):
            f.write(",".join(str(int(v)) for v in row) + "\n")


def run_evaluate(args):
    network, images, labels = load_matching(args.weights, args.dataset, args.split,
                                            args.data_dir)
    if args.limit is not None:
        if args.limit < 1:
            raise UserError(f"--limit must be positive, got {args.limit}")
        images, labels = images[: args.limit], labels[: args.limit]
    start = time.perf_counter()
    result = infer(network, images)
    seconds = time.perf_counter() - start
    print(f"{args.weights} ({network.describe()}) on {args.dataset} {args.split}: "
          f"{summarize(result, labels)}  [{labels.size} images in {seconds:.2f} s, "
          f"{labels.size / seconds:,.0f} images/s]")
    if args.predictions:
        write_predictions(args.predictions, labels, result.predicted, result.decision_step,
                          result.fired)
        print(f"predictions written to {args.predictions}")
    return 0


# ---- bs4nn export -----------------------------------------------------------------------

def add_export_arguments(parser):
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    parser.add_argument("--lanes", type=int, default=0,
                        help="lanes of the first hidden layer's ROM words (0: all neurons)")
    parser.add_argument("-o", "--out-dir", default="build/rom")


def export_hex(network, out_dir, lanes=0):
    """Write ``$readmemh`` files as the generated ROMs read them; returns the paths.

    ``layer0.hex``: one word per (input, lane group), see :func:`packing.column_rom_words`.
    ``layer{k}.hex`` for k > 0: one word per neuron, bit ``i`` for input ``i``.
    ``thresholds{k}.hex``: one threshold per neuron.
    """
    first = network.layers[0]
    lanes = lanes or first.n_out
    if not 1 <= lanes <= first.n_out:
        raise UserError(f"--lanes must be between 1 and {first.n_out} (0 means all), "
                        f"got {lanes}")
    paths = []
    for k, layer in enumerate(network.layers):
        if k == 0:
            words, width = packing.column_rom_words(layer.bits, lanes), lanes
        else:
            words, width = packing.row_rom_words(layer.bits), layer.n_in
        threshold_width = max(1, int(layer.n_in - 1).bit_length())
        for name, lines in ((f"layer{k}.hex", packing.hex_lines(words, width)),
                            (f"thresholds{k}.hex",
                             packing.hex_lines(layer.thresholds.tolist(), threshold_width))):
            path = Path(out_dir) / name
            with atomic_write(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            paths.append(path)
    return paths


def run_export(args):
    network = Network.load(args.weights)
    for path in export_hex(network, args.out_dir, args.lanes):
        print(f"wrote {path}")
    return 0


# ---- bs4nn import-reference -------------------------------------------------------------

def add_import_reference_arguments(parser):
    parser.add_argument("arrays", nargs="+", help="latent weights per layer (.npy), shaped "
                        "(n_out, n_in, 1) as the authors' reference code saves them")
    parser.add_argument("--factors", nargs="+", type=float, required=True,
                        help="the learned threshold factor f of each layer (threshold 100/f)")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--dataset", default="mnist", help="recorded in the metadata")


def import_reference(arrays, factors, metadata=None):
    """Build a :class:`Network` from the authors' latent weights and threshold factors.

    Binary weight = sign (0 counts as +1); integer threshold = floor(100 / f).
    """
    if len(arrays) != len(factors):
        raise UserError(f"{len(arrays)} weight arrays but {len(factors)} factors")
    layers = []
    for k, (latent, factor) in enumerate(zip(arrays, factors, strict=True)):
        latent = np.asarray(latent)
        if latent.ndim == 3 and latent.shape[2] == 1:
            latent = latent[:, :, 0]
        if latent.ndim != 2 or not np.issubdtype(latent.dtype, np.floating):
            raise UserError(f"layer {k}: expected float weights shaped (n_out, n_in, 1), got "
                            f"{latent.dtype} {latent.shape}")
        if not np.all(np.isfinite(latent)):
            raise UserError(f"layer {k}: weights contain NaN or infinity")
        if not factor > 0:
            raise UserError(f"layer {k}: factor must be positive, got {factor}")
        signs = np.where(latent >= 0, 1, -1)
        threshold = int(np.floor(100 / factor))
        try:
            layers.append(Layer(signs, np.full(signs.shape[0], threshold)))
        except UserError as error:
            raise UserError(f"layer {k}: {error}") from None
    return Network(tuple(layers), metadata or {})


def run_import_reference(args):
    arrays = []
    for path in args.arrays:
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (OSError, ValueError) as error:
            raise UserError(f"{path}: not a .npy array ({error})") from None
    metadata = {"dataset": args.dataset, "source": "authors' reference weights",
                "command": "bs4nn " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "",
                "factors": args.factors}
    network = import_reference(arrays, args.factors, metadata)
    network.save(args.out)
    thresholds = ", ".join(str(int(layer.thresholds[0])) for layer in network.layers)
    print(f"wrote {args.out} ({network.describe()}, thresholds {thresholds})")
    return 0


# ---- bs4nn raster -----------------------------------------------------------------------

def add_raster_arguments(parser):
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS)
    _add_data_arguments(parser)
    parser.add_argument("--index", type=int, default=0, help="image index in the split")
    parser.add_argument("-o", "--out", default="build/raster.png")


def run_raster(args):
    network, images, labels = load_matching(args.weights, args.dataset, args.split,
                                            args.data_dir)
    if not 0 <= args.index < labels.size:
        raise UserError(f"--index must be in 0..{labels.size - 1}, got {args.index}")
    pixels, label = images[args.index], int(labels[args.index])
    result = infer(network, pixels)
    os.environ.setdefault("MPLBACKEND", "Agg")
    import matplotlib.pyplot as plt

    input_times = MAX_STEP - pixels.astype(np.int16)
    rows = [("input", input_times)] + [
        (f"hidden {k + 1}" if k < len(network.layers) - 1 else "output", times[0])
        for k, times in enumerate(result.spike_times)]
    figure, axes = plt.subplots(len(rows) + 1, 1, figsize=(9, 2.2 * (len(rows) + 1)),
                                gridspec_kw={"height_ratios": [2] + [1] * len(rows)})
    axes[0].imshow(pixels.reshape(28, 28) if pixels.size == 784 else pixels[None],
                   cmap="gray_r")
    axes[0].set_axis_off()
    predicted, step = int(result.predicted[0]), int(result.decision_step[0])
    axes[0].set_title(f"{args.dataset} {args.split} #{args.index}: label {label}, predicted "
                      f"{predicted}, decision step {step if step < NO_SPIKE else 'none'}")
    for axis, (name, times) in zip(axes[1:], rows, strict=True):
        spiking = np.nonzero(times < NO_SPIKE)[0]
        colors = ["tab:red" if name == "output" and j == predicted else "tab:blue"
                  for j in spiking]
        axis.scatter(times[spiking], spiking, s=4 if name != "output" else 30, c=colors)
        if step < NO_SPIKE:
            axis.axvline(step, color="tab:red", linestyle="--", linewidth=1)
        axis.set_xlim(0, NO_SPIKE)
        axis.set_ylim(-1, times.size)
        axis.set_ylabel(f"{name}\nneuron")
    axes[-1].set_xlabel("time step (dashed: decision)")
    figure.tight_layout()
    with atomic_write(args.out, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)
    print(f"wrote {args.out}: label {label}, predicted {predicted}, decision step {step}")
    return 0
