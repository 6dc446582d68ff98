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

#: Published figures, quoted as published (not measured here).
ANCHORS = [
    {"design": "BS4NN paper (MNIST, 784-600-10)", "accuracy": "97.0% (lenient)",
     "figures": "software only"},
    {"design": "BS4NN paper (Fashion-MNIST, 784-1000-10)", "accuracy": "87.3% (lenient)",
     "figures": "software only"},
    {"design": "FINN SFC-max (ZC706, 200 MHz)", "accuracy": "95.8%",
     "figures": "12.3 M images/s, 0.31 µs, 91,131 LUTs (about 135 images/s per LUT)"},
    {"design": "BNN-PYNQ LFC W1A1 (Pynq-Z1)", "accuracy": "98.4%",
     "figures": "about 31,000 LUTs, 112 BRAM tiles"},
    {"design": "Spiker+ (MNIST)", "accuracy": "93.85%",
     "figures": "780 µs per image, 7,612 logic cells, 18 BRAM"},
]


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


def run(args):
    from .cycle_model import predict

    out_dir = Path(args.out_dir)
    accuracy = accuracy_figures()
    mnist = accuracy["mnist"]
    network = Network.load(SHIPPED["mnist"])
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
    lanes = args.lanes or network.layers[0].n_out
    report_path = Path(args.report)
    if report_path.exists():
        rows = json.loads(report_path.read_text())["rows"]
        row = next((r for r in rows if r["lanes"] == lanes
                    and r["pixels_per_beat"] == args.pixels_per_beat), None)
        if row:
            fmax = row["fmax_mhz"]
            figures["fmax_mhz"] = fmax
            figures["lut4"] = row["lut4"]
            figures["images_per_s"] = round(fmax * 1e6 / figures["cycles_per_image_mean"])
            figures["latency_us"] = round(figures["latency_cycles_mean"] / fmax, 3)
            figures["images_per_s_per_lut"] = round(figures["images_per_s"] / row["lut4"], 1)
    else:
        figures["fmax_mhz"] = f"run make report first ({report_path} is missing)"
    plot_accuracy_vs_step(mnist["result"], mnist["labels"],
                          out_dir / "accuracy_vs_decision_step.png")
    lines = [f"Measured by `bs4nn bench` (LANES={lanes}, {args.pixels_per_beat} pixels/beat), "
             f"{time.strftime('%Y-%m-%d')}.", "", "| figure | value |", "|---|---|"]
    lines += [f"| {key.replace('_', ' ')} | {value} |" for key, value in figures.items()]
    lines += ["", "Published anchors (quoted, not measured here):", "",
              "| design | accuracy | figures |", "|---|---|---|"]
    lines += [f"| {a['design']} | {a['accuracy']} | {a['figures']} |" for a in ANCHORS]
    with atomic_write(out_dir / "bench.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out_dir / "bench.json", "w") as f:
        json.dump({"measured": figures, "anchors": ANCHORS}, f, indent=2)
    print("\n".join(lines))
    print(f"\nwrote {out_dir / 'bench.md'}, {out_dir / 'bench.json'}, "
          f"{out_dir / 'accuracy_vs_decision_step.png'}")
    return 0
