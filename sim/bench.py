"""One table of measured figures beside the published anchors (``bs4nn bench``).

Measured in one run on this machine: golden-model inference speed, training seconds per MNIST
epoch, strict accuracy of the shipped networks, RTL cycles per image over the 10,000 MNIST
test images (cycle model, checked against Verilator on a sample), and throughput and latency
from the Fmax of ``make report`` (``build/report/report.json``). :func:`write_bench` writes
``bench.md``, ``bench.json`` and ``accuracy_vs_decision_step.png`` to the output folder.
"""

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bs4nn.model import data
from bs4nn.model.errors import UserError
from bs4nn.model.inference import infer
from bs4nn.model.network import DEFAULT_WEIGHTS, NO_SPIKE, SHIPPED_WEIGHTS, Network, atomic_write

#: Published figures, quoted as published (not measured here); a figure left out was not
#: published.
ANCHORS = [
    {"design": "BS4NN paper, 784-600-10 (software)", "dataset": "MNIST",
     "accuracy": "97.0% (lenient)"},
    {"design": "BS4NN paper, 784-1000-10 (software)", "dataset": "Fashion-MNIST",
     "accuracy": "87.3% (lenient)"},
    {"design": "FINN SFC-max, ZC706, 200 MHz", "dataset": "MNIST", "accuracy": "95.8%",
     "images_per_s": "12.3 M", "latency_us": "0.31", "luts": "91,131 LUT",
     "images_per_s_per_lut": "about 135", "pareto": (12.3e6, 91131)},
    {"design": "BNN-PYNQ LFC W1A1, Pynq-Z1", "dataset": "MNIST", "accuracy": "98.4%",
     "luts": "about 31,000 LUT", "block_ram": "112 BRAM tiles"},
    {"design": "Spiker+", "dataset": "MNIST", "accuracy": "93.85%", "latency_us": "780",
     "luts": "7,612 logic cells", "block_ram": "18 BRAM", "pareto": (1 / 780e-6, 7612)},
]
#: ``pareto``: (images/s, LUTs) of an anchor as published (Spiker+: one image per latency),
#: for the report's Pareto picture; the table leaves it out.
COMPARISON_COLUMNS = [("design", "design"), ("source", "source"), ("dataset", "dataset"),
                      ("accuracy", "accuracy"), ("images_per_s", "images/s"),
                      ("latency_us", "latency µs"), ("luts", "LUTs"),
                      ("block_ram", "block RAM"), ("images_per_s_per_lut", "images/s per LUT")]


def accuracy_figures():
    """Strict and lenient test accuracy and inference speed of each shipped network."""
    rows = {}
    for dataset, path in SHIPPED_WEIGHTS.items():
        if not path.exists():
            continue
        network = Network.load(path)
        images, labels = data.load(dataset, "test")
        start = time.perf_counter()
        result = infer(network, images)
        seconds = time.perf_counter() - start
        rows[dataset] = {"weights": str(path), "strict": result.strict_accuracy(labels),
                         "lenient": result.lenient_accuracy(labels),
                         "model_images_per_s": labels.size / seconds,
                         "mean_decision_step": float(np.mean(result.decision_step)),
                         "result": result, "labels": labels}
    if "mnist" not in rows:
        raise UserError(f"{DEFAULT_WEIGHTS}: missing (the shipped MNIST weights)")
    return rows


def training_seconds_per_epoch(config):
    """Train per ``config`` (a :class:`~bs4nn.model.train.TrainConfig`, e.g. one epoch of the
    shipped recipe): ``(epoch seconds, whole run seconds)``; the whole run loads the data,
    trains, runs the validation pass and evaluates the test split."""
    from bs4nn.model.train import evaluate, train

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        network, history, _ = train(config, scratch, log=lambda line: None, progress_bar=False)
    evaluate(network, *data.load(config.dataset, "test"))
    return history[0]["train_seconds"], time.perf_counter() - start


def rtl_check(network, sample, lanes, pixels_per_beat, events_per_cycle=1):
    """Stream the first ``sample`` MNIST test images through the RTL under Verilator."""
    from . import runner

    config = runner.SimConfig(lanes=lanes, pixels_per_beat=pixels_per_beat,
                              events_per_cycle=events_per_cycle)
    build = runner.prepare_build(network, config, weights=DEFAULT_WEIGHTS)
    outcome = runner.run_test(build, "mnist_inference", seed=0, n=sample, quiet=True)
    if not outcome.passed:
        raise UserError(f"the Verilator check did not pass: "
                        f"{runner.failure_excerpt(outcome.directory / 'sim.log')}")
    return f"{sample}/{sample} RTL == model and cycle model"


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


def implementation_row(report_path, lanes, pixels_per_beat, events_per_cycle=1):
    """The row of ``make report``'s JSON for this configuration (``None`` when absent)."""
    if not report_path.exists():
        return None
    try:
        rows = json.loads(report_path.read_text())["rows"]
    except (ValueError, KeyError) as error:
        raise UserError(f"{report_path}: not a report of make report ({error})") from None
    return next((r for r in rows if r["lanes"] == lanes
                 and r["pixels_per_beat"] == pixels_per_beat
                 and r.get("events_per_cycle", 1) == events_per_cycle), None)


def comparison_rows(figures, accuracy, lanes, pixels_per_beat, events_per_cycle=1):
    """The shipped networks as measured here, then the published anchors."""
    def percent(row):
        return f"{100 * row['strict']:.2f}% strict ({100 * row['lenient']:.2f}% lenient)"

    measured = {"design": f"bs4nn 784-600-10, ECP5-85F, LANES={lanes}, {pixels_per_beat} "
                          f"pixels/beat, {events_per_cycle} events/cycle",
                "source": "measured here", "dataset": "MNIST",
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
    "seconds_for_a_one_epoch_mnist_training_run":
        "one-epoch MNIST training with data loading, validation and test (s)",
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


def markdown(figures, comparison, lanes, pixels_per_beat, events_per_cycle, report_path):
    lines = [f"Measured by `bs4nn bench` on this machine (LANES={lanes}, {pixels_per_beat} "
             f"pixels/beat, {events_per_cycle} events/cycle), {time.strftime('%Y-%m-%d')}; "
             f"published figures are quoted as published, not measured here.", "",
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


def write_bench(network, out_dir, *, lanes, pixels_per_beat, rtl_sample, training, report_path,
                events_per_cycle=1):
    """Measure everything, write ``bench.md``, ``bench.json`` and
    ``accuracy_vs_decision_step.png`` into ``out_dir``; returns the lines of ``bench.md``.

    ``network``: the shipped MNIST network; ``rtl_sample``: MNIST test images checked under
    Verilator (0: none); ``training``: a :class:`~bs4nn.model.train.TrainConfig` to time
    (None: no training figure); ``report_path``: ``make
    report``'s JSON (Fmax and LUTs; hardware figures are left out when it has no row).
    """
    from .cycle_model import predict

    out_dir, report_path = Path(out_dir), Path(report_path)
    n_hidden = network.layers[0].n_out
    accuracy = accuracy_figures()
    mnist = accuracy["mnist"]
    images = data.load("mnist", "test")[0]
    result_cycles = predict(network, images, lanes=lanes, pixels_per_beat=pixels_per_beat,
                            events_per_cycle=events_per_cycle)
    intervals = np.diff(result_cycles, prepend=-1)
    sample = images[:: max(1, images.shape[0] // 500)]
    latency = np.array([predict(network, image[None], lanes=lanes,
                                pixels_per_beat=pixels_per_beat,
                                events_per_cycle=events_per_cycle)[0] + 1
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
    if training is not None:
        epoch, whole = training_seconds_per_epoch(training)
        figures["training_seconds_per_mnist_epoch"] = round(epoch, 1)
        figures["seconds_for_a_one_epoch_mnist_training_run"] = round(whole, 1)
    if rtl_sample:
        figures["rtl_check"] = rtl_check(network, rtl_sample, lanes, pixels_per_beat,
                                         events_per_cycle)
    lanes = lanes or n_hidden
    row = implementation_row(report_path, lanes, pixels_per_beat, events_per_cycle)
    if row:
        fmax = row["fmax_mhz"]
        figures.update({
            "fmax_mhz": fmax, "lut4": row["lut4"], "xc7_lut": row["xc7_lut"],
            "dp16kd": row["dp16kd"],
            "images_per_s": round(fmax * 1e6 / figures["cycles_per_image_mean"]),
            "latency_us": round(figures["latency_cycles_mean"] / fmax, 2),
        })
        figures["images_per_s_per_xc7_lut"] = round(figures["images_per_s"] / row["xc7_lut"], 1)
    comparison = comparison_rows(figures, accuracy, lanes, pixels_per_beat, events_per_cycle)
    plot_accuracy_vs_step(mnist["result"], mnist["labels"],
                          out_dir / "accuracy_vs_decision_step.png")
    lines = markdown(figures, comparison, lanes, pixels_per_beat, events_per_cycle, report_path)
    with atomic_write(out_dir / "bench.md", "w") as f:
        f.write("\n".join(lines) + "\n")
    with atomic_write(out_dir / "bench.json", "w") as f:
        json.dump({"measured": figures, "comparison": comparison}, f, indent=2)
    return lines
