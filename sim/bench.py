"""``bs4nn bench``: one table of measured figures beside the published anchors.

Measured in one run on this machine: golden-model inference speed, training seconds per MNIST
epoch, strict accuracy of the shipped networks, RTL cycles per image over the 10,000 MNIST
test images (cycle model, checked against Verilator on a sample), and throughput and latency
from the Fmax of ``make report`` (``build/report/report.json``). Writes ``bench.md``,
``bench.json`` and ``accuracy_vs_decision_step.png`` to the output folder.
"""

import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bs4nn.model import data
from bs4nn.model.errors import UserError
from bs4nn.model.inference import infer
from bs4nn.model.network import NO_SPIKE, Network, atomic_write

SHIPPED = {"mnist": "weights/mnist-784-600-10.npz",
           "fashion-mnist": "weights/fashion-mnist-784-1000-10.npz"}

#: Published figures, quoted as published (not measured here); a figure left out was not
#: published.
ANCHORS = [
    {"design": "BS4NN paper, 784-600-10 (software)", "dataset": "MNIST",
     "accuracy": "97.0% (lenient)"},
    {"design": "BS4NN paper, 784-1000-10 (software)", "dataset": "Fashion-MNIST",
     "accuracy": "87.3% (lenient)"},
    {"design": "FINN SFC-max, ZC706, 200 MHz", "dataset": "MNIST", "accuracy": "95.8%",
     "images_per_s": "12.3 M", "latency_us": "0.31", "luts": "91,131 LUT",
     "images_per_s_per_lut": "about 135"},
    {"design": "BNN-PYNQ LFC W1A1, Pynq-Z1", "dataset": "MNIST", "accuracy": "98.4%",
     "luts": "about 31,000 LUT", "block_ram": "112 BRAM tiles"},
    {"design": "Spiker+", "dataset": "MNIST", "accuracy": "93.85%", "latency_us": "780",
     "luts": "7,612 logic cells", "block_ram": "18 BRAM"},
]
COMPARISON_COLUMNS = [("design", "design"), ("source", "source"), ("dataset", "dataset"),
                      ("accuracy", "accuracy"), ("images_per_s", "images/s"),
                      ("latency_us", "latency µs"), ("luts", "LUTs"),
                      ("block_ram", "block RAM"), ("images_per_s_per_lut", "images/s per LUT")]


def add_arguments(parser):
    parser.add_argument("--lanes", type=int, default=0, help="0: all hidden neurons")
    parser.add_argument("--pixels-per-beat", type=int, default=8)
    parser.add_argument("--rtl-sample", type=int, default=200,
                        help="MNIST test images checked under Verilator (0: skip)")
    parser.add_argument("--skip-training", action="store_true",
                        help="do not time a training epoch")
    parser.add_argument("--report", default="build/report/report.json",
                        help="make report's JSON, for Fmax and LUTs")
    parser.add_argument("-o", "--out-dir", default="build/bench")


def _bs4nn(*arguments):
    command = [sys.executable, "-m", "bs4nn.cli", *arguments]
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise UserError(f"'bs4nn {' '.join(arguments)}' failed: "
                        f"{(result.stderr or result.stdout).strip().splitlines()[-1:]}")
    return result.stdout, time.perf_counter() - start


def accuracy_figures():
    rows = {}
    for dataset, path in SHIPPED.items():
        if not Path(path).exists():
            continue
        network = Network.load(path)
        images, labels = data.load(dataset, "test")
        start = time.perf_counter()
        result = infer(network, images)
        seconds = time.perf_counter() - start
        rows[dataset] = {"weights": path, "strict": result.strict_accuracy(labels),
                         "lenient": result.lenient_accuracy(labels),
                         "model_images_per_s": labels.size / seconds,
                         "mean_decision_step": float(np.mean(result.decision_step)),
                         "result": result, "labels": labels}
    if "mnist" not in rows:
        raise UserError(f"{SHIPPED['mnist']}: missing (the shipped MNIST weights)")
    return rows


def training_seconds_per_epoch():
    """One epoch of the shipped MNIST recipe: ``(epoch seconds, whole command seconds)``."""
    with tempfile.TemporaryDirectory() as scratch:
        stdout, seconds = _bs4nn("train", "--dataset", "mnist", "--epochs", "1", "--lr", "0.003",
                                 "--threshold-lr", "0", "--shift", "1", "--no-progress",
                                 "--run-dir", scratch, "--out", f"{scratch}/w.npz")
    match = re.search(r"epoch +1/1 .* ([0-9.]+) s train", stdout)
    if not match:
        raise UserError(f"no epoch time in the training log: {stdout.strip()[-200:]}")
    return float(match.group(1)), seconds


def rtl_check(sample, lanes, pixels_per_beat):
    stdout, seconds = _bs4nn("sim", "mnist_inference", "--n", str(sample), "--lanes",
                             str(lanes), "--pixels-per-beat", str(pixels_per_beat))
    match = re.search(r"mnist_inference: (\d+)/(\d+) RTL == model", stdout)
    if not match or match.group(1) != match.group(2):
        raise UserError(f"the Verilator check did not pass: {stdout.strip()[-200:]}")
    return f"{match.group(1)}/{match.group(2)} RTL == model and cycle model"


def plot_accuracy_vs_step(result, labels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.arange(NO_SPIKE + 1)
    decided = np.array([np.mean(result.decision_step <= s) for s in steps])
    correct = result.predicted == labels
    accuracy = np.array([correct[result.decision_step <= s].mean()
                         if np.any(result.decision_step <= s) else np.nan for s in steps])
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(steps, decided, label="fraction of images decided")
    axis.plot(steps, accuracy, label="accuracy of the images decided so far")
    axis.set_xlabel("decision step (256: no output spike, decided on potential)")
    axis.set_ylim(0, 1.01)
    axis.grid(True, alpha=0.3)
    axis.legend(loc="lower right")
    axis.set_title("MNIST test set, shipped 784-600-10 network")
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)


def implementation_row(report_path, lanes, pixels_per_beat):
    """The row of ``make report``'s JSON for this configuration (``None`` when absent)."""
    if not report_path.exists():
        return None
    try:
        rows = json.loads(report_path.read_text())["rows"]
    except (ValueError, KeyError) as error:
        raise UserError(f"{report_path}: not a report of make report ({error})") from None
    return next((r for r in rows if r["lanes"] == lanes
                 and r["pixels_per_beat"] == pixels_per_beat), None)


def comparison_rows(figures, accuracy, lanes, pixels_per_beat):
    """The shipped networks as measured here, then the published anchors."""
    def percent(row):
        return f"{100 * row['strict']:.2f}% strict ({100 * row['lenient']:.2f}% lenient)"

    measured = {"design": f"bs4nn 784-600-10, ECP5-85F, LANES={lanes}, {pixels_per_beat} "
                          f"pixels/beat", "source": "measured here", "dataset": "MNIST",
                "accuracy": percent(accuracy["mnist"])}
    if "fmax_mhz" in figures:
        measured |= {
            "images_per_s": f"{figures['images_per_s']:,}",
            "latency_us": f"{figures['latency_us']:.2f}",
            "luts": f"{figures['lut4']:,} LUT4; {figures['xc7_lut']:,} xc7 LUT",
            "block_ram": f"{figures['dp16kd']} DP16KD",
            "images_per_s_per_lut": f"{figures['images_per_s_per_xc7_lut']} per xc7 LUT",
        }
    rows = [measured]
    if "fashion-mnist" in accuracy:
        rows.append({"design": "bs4nn 784-1000-10 (golden model)", "source": "measured here",
                     "dataset": "Fashion-MNIST", "accuracy": percent(accuracy["fashion-mnist"])})
    rows += [anchor | {"source": "published"} for anchor in ANCHORS]
    # Every row names every column; None: not measured or not published.
    return [{key: row.get(key) for key, _ in COMPARISON_COLUMNS} for row in rows]


FIGURE_NAMES = {
    "model_images_per_s": "golden-model inference, MNIST test set (images/s)",
    "cycles_per_image_mean": "RTL cycles per image, back to back: mean",
    "cycles_per_image_p50": "RTL cycles per image: p50",
    "cycles_per_image_p99": "RTL cycles per image: p99",
    "latency_cycles_mean": "latency of one image alone (cycles, mean)",
    "training_seconds_per_mnist_epoch": "training, one MNIST epoch (s)",
    "seconds_for_a_one_epoch_mnist_training_run": "a whole one-epoch MNIST training run (s)",
    "rtl_check": "RTL under Verilator",
    "fmax_mhz": "Fmax after place and route (MHz)",
    "lut4": "ECP5 LUT4 (Yosys)",
    "xc7_lut": "Xilinx 7-series LUT (Yosys synth_xilinx)",
    "dp16kd": "ECP5 DP16KD block RAMs",
    "images_per_s": "throughput, Fmax / mean cycles (images/s)",
    "latency_us": "latency (µs)",
    "images_per_s_per_xc7_lut": "images/s per xc7 LUT",
}


def _cell(value):
    if value is None:
        return "—"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown(figures, comparison, lanes, pixels_per_beat, report_path):
    lines = [f"Measured by `bs4nn bench` on this machine (LANES={lanes}, {pixels_per_beat} "
             f"pixels/beat), {time.strftime('%Y-%m-%d')}; published figures are quoted as "
             f"published, not measured here.", "",
             "| " + " | ".join(title for _, title in COMPARISON_COLUMNS) + " |",
             "|" + "---|" * len(COMPARISON_COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[key]) for key, _ in COMPARISON_COLUMNS) + " |"
              for row in comparison]
    if "fmax_mhz" not in figures:
        lines += ["", f"No hardware figures: `make report` has no row for this configuration "
                      f"in {report_path}."]
    lines += ["", "| figure | value |", "|---|---|"]
    lines += [f"| {FIGURE_NAMES.get(key, key.replace('_', ' '))} | {_cell(value)} |"
              for key, value in figures.items()]
    return lines


def run(args):
    from bs4nn.gen.pixel_input import PIXELS_PER_BEAT_CHOICES

    from .cycle_model import predict

    if args.pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
        raise UserError(f"--pixels-per-beat must be one of "
                        f"{', '.join(map(str, PIXELS_PER_BEAT_CHOICES))}, got "
                        f"{args.pixels_per_beat}")
    if args.rtl_sample < 0:
        raise UserError(f"--rtl-sample must be non-negative, got {args.rtl_sample}")
    out_dir = Path(args.out_dir)
    network = Network.load(SHIPPED["mnist"])
    n_hidden = network.layers[0].n_out
    if not 0 <= args.lanes <= n_hidden:
        raise UserError(f"--lanes must lie in 0..{n_hidden} (0: all), got {args.lanes}")
    accuracy = accuracy_figures()
    mnist = accuracy["mnist"]
    images = data.load("mnist", "test")[0]
    result_cycles = predict(network, images, lanes=args.lanes,
                            pixels_per_beat=args.pixels_per_beat)
    intervals = np.diff(result_cycles, prepend=-1)
    sample = images[:: max(1, images.shape[0] // 500)]
    latency = np.array([predict(network, image[None], lanes=args.lanes,
                                pixels_per_beat=args.pixels_per_beat)[0] + 1
                        for image in sample])
    figures = {
        "model_images_per_s": round(mnist["model_images_per_s"]),
        "cycles_per_image_mean": round(float(result_cycles[-1] + 1) / images.shape[0], 1),
        "cycles_per_image_p50": round(float(np.percentile(intervals, 50)), 1),
        "cycles_per_image_p99": round(float(np.percentile(intervals, 99)), 1),
        "latency_cycles_mean": round(float(latency.mean()), 1),
    }
    for dataset, row in accuracy.items():
        figures[f"{dataset}_strict_accuracy"] = round(row["strict"], 4)
        figures[f"{dataset}_lenient_accuracy"] = round(row["lenient"], 4)
    if not args.skip_training:
        epoch, whole = training_seconds_per_epoch()
        figures["training_seconds_per_mnist_epoch"] = round(epoch, 1)
        # The whole command: data loading, the epoch, validation, calibration and test.
        figures["seconds_for_a_one_epoch_mnist_training_run"] = round(whole, 1)
    if args.rtl_sample:
        figures["rtl_check"] = rtl_check(args.rtl_sample, args.lanes, args.pixels_per_beat)
    lanes = args.lanes or n_hidden
    row = implementation_row(Path(args.report), lanes, args.pixels_per_beat)
    if row:
        fmax = row["fmax_mhz"]
        figures.update({
            "fmax_mhz": fmax, "lut4": row["lut4"], "xc7_lut": row["xc7_lut"],
            "dp16kd": row["dp16kd"],
            "images_per_s": round(fmax * 1e6 / figures["cycles_per_image_mean"]),
            "latency_us": round(figures["latency_cycles_mean"] / fmax, 2),
        })
        figures["images_per_s_per_xc7_lut"] = round(figures["images_per_s"] / row["xc7_lut"], 1)
    comparison = comparison_rows(figures, accuracy, lanes, args.pixels_per_beat)
    plot_accuracy_vs_step(mnist["result"], mnist["labels"],
                          out_dir / "accuracy_vs_decision_step.png")
    lines = markdown(figures, comparison, lanes, args.pixels_per_beat, Path(args.report))
    with atomic_write(out_dir / "bench.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out_dir / "bench.json", "w") as f:
        json.dump({"measured": figures, "comparison": comparison}, f, indent=2)
    print("\n".join(lines))
    print(f"\nwrote {out_dir / 'bench.md'}, {out_dir / 'bench.json'}, "
          f"{out_dir / 'accuracy_vs_decision_step.png'}")
    return 0
