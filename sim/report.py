"""Synthesis and place-and-route figures for several configurations (``bs4nn report``).

For each (LANES, PIXELS_PER_BEAT, EVENTS_PER_CYCLE) the design is generated from the weights
file, synthesized with Yosys for the ECP5 (LUT4, FF, DP16KD) and placed and routed with
nextpnr on the LFE5U-85F (Fmax), synthesized for Xilinx 7-series (LUT6, FF, BRAM; no
timing), and combined with the cycle model's cycles per image on the MNIST test set.
:func:`write_report` writes ``report.md``, ``report.json``, ``cycles_vs_lanes.png`` and
``pareto.png`` to the output folder.

The configurations run as Ray tasks, one CPU each: on a Ray started on this machine, or on
an existing cluster (whose nodes must all see the output folder, where each configuration's
figures are cached).
"""

import hashlib
import json
import time
from pathlib import Path

from tqdm import tqdm

from bs4nn.model.cluster import get, ray_session
from bs4nn.model.network import atomic_write

from . import implement

COLUMNS = [
    ("lanes", "LANES"), ("pixels_per_beat", "pixels/beat"),
    ("events_per_cycle", "events/cycle"), ("lut4", "LUT4"),
    ("ccu2c", "CCU2C"), ("lutram", "DPR16X4"), ("comb", "placed LUTs"), ("ff", "FF"),
    ("dp16kd", "DP16KD"), ("weights_in", "weights in"), ("fmax_mhz", "Fmax MHz"),
    ("cycles_per_image", "cycles/image"), ("images_per_s", "images/s"),
    ("images_per_s_per_lut", "images/s/LUT4"), ("xc7_lut", "xc7 LUT"), ("xc7_ff", "xc7 FF"),
    ("xc7_bram36", "xc7 BRAM36"), ("images_per_s_per_xc7_lut", "images/s/xc7 LUT"),
]


#: LANES of the default report, each at the first of :data:`PIXELS_PER_BEAT`.
LANES = (16, 64, 150, 600)
#: Pixels per beat of the default report, each at the last of :data:`LANES`.
PIXELS_PER_BEAT = (8, 4)
#: Events per cycle of the default report, each at the last of :data:`LANES` and
#: :data:`FAST_PIXELS_PER_BEAT` (the other configurations take one event per cycle). None yet:
#: at LANES=600, 16 pixels per beat and 4 events per cycle nextpnr's router2 did not converge
#: (congestion) in over 25 minutes; ``--events-per-cycle 4`` asks for it.
EVENTS_PER_CYCLE = ()
#: The pixels per beat of the configurations with several events per cycle: the widest beat,
#: so that loading (49 cycles per 784-pixel image) does not bound them first.
FAST_PIXELS_PER_BEAT = 16


def configurations(lanes, pixels_per_beat, events_per_cycle=()):
    """``(lanes, pixels_per_beat, events_per_cycle)`` triples: every LANES at the first pixels
    per beat, then every pixels per beat at the last LANES (one event per cycle), then every
    events per cycle at the last LANES and :data:`FAST_PIXELS_PER_BEAT`, without repeats."""
    return list(dict.fromkeys([(n, pixels_per_beat[0], 1) for n in lanes]
                              + [(lanes[-1], ppb, 1) for ppb in pixels_per_beat]
                              + [(lanes[-1], FAST_PIXELS_PER_BEAT, e)
                                 for e in events_per_cycle]))


def work_dir_name(lanes, pixels_per_beat, events_per_cycle):
    """The folder of a configuration's tools and saved figures."""
    name = f"lanes{lanes}_ppb{pixels_per_beat}"
    return name if events_per_cycle == 1 else f"{name}_e{events_per_cycle}"


def cycles_per_image(network, lanes, pixels_per_beat, images, events_per_cycle=1):
    """Mean result-to-result cycles over ``images`` streamed back to back (cycle model)."""
    from .cycle_model import predict

    result_cycles = predict(network, images, lanes=lanes, pixels_per_beat=pixels_per_beat,
                            events_per_cycle=events_per_cycle)
    return float(result_cycles[-1] + 1) / images.shape[0]


def cache_key(design, xilinx, frequency):
    """What a configuration's saved figures hold for: its Verilog and the tool settings."""
    return {"verilog_sha256": hashlib.sha256(design.verilog.encode()).hexdigest(),
            "xilinx": xilinx, "frequency": frequency}


def implement_configuration(network, lanes, pixels_per_beat, events_per_cycle, work_dir, xilinx,
                            frequency):
    """The tools' figures for one configuration. They are kept in ``work_dir/row.json`` with
    the design's hash and the tool settings, and reused while those are unchanged, so that an
    interrupted report resumes where it stopped."""
    from bs4nn.gen.build import generate

    work_dir.mkdir(parents=True, exist_ok=True)
    design = generate(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                      events_per_cycle=events_per_cycle)
    key = cache_key(design, xilinx, frequency)
    saved = work_dir / "row.json"
    if saved.exists():
        row = json.loads(saved.read_text())
        if row.get("key") == key:
            return row
    verilog = work_dir / "bs4nn.v"
    verilog.write_text(design.verilog)
    row = {"lanes": lanes or network.layers[0].n_out, "pixels_per_beat": pixels_per_beat,
           "events_per_cycle": events_per_cycle}
    start = time.perf_counter()
    row.update(implement.synth_ecp5(verilog, work_dir))
    row.update(implement.place_and_route_ecp5(work_dir, frequency))
    if xilinx:
        row.update(implement.synth_xilinx(verilog, work_dir))
    row["tool_seconds"] = round(time.perf_counter() - start, 1)
    rom_bits = network.layers[0].n_in * network.layers[0].n_out
    in_block_ram = row["weight_dp16kd"] * implement.BLOCK_RAM_BITS["DP16KD"] >= rom_bits
    row["weights_in"] = f"{row['weight_dp16kd']} DP16KD" if in_block_ram else "LUTs"
    row["key"] = key
    with atomic_write(saved, "w") as f:
        json.dump(row, f, indent=2)
    return row


def markdown_table(rows, columns=COLUMNS):
    present = [(key, title) for key, title in columns if any(key in row for row in rows)]
    lines = ["| " + " | ".join(title for _, title in present) + " |",
             "|" + "---|" * len(present)]
    for row in rows:
        cells = []
        for key, _ in present:
            value = row.get(key, "–")
            if isinstance(value, int) and not isinstance(value, bool):
                cells.append(f"{value:,}")
            elif isinstance(value, float):
                cells.append(f"{value:,.0f}" if value >= 100 else f"{value:.1f}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_cycles_vs_lanes(network, images, path, lanes_list):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_hidden = network.layers[0].n_out
    lanes_list = sorted({lanes for lanes in lanes_list if 1 <= lanes <= n_hidden} | {n_hidden})
    cycles = [cycles_per_image(network, lanes, 8, images) for lanes in lanes_list]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.loglog(lanes_list, cycles, "o-")
    for lanes, value in zip(lanes_list, cycles, strict=True):
        axis.annotate(f"{value:.0f}", (lanes, value), textcoords="offset points", xytext=(4, 4))
    axis.set_xlabel("LANES (hidden neurons updated per cycle)")
    axis.set_ylabel("cycles per image (back to back)")
    axis.set_title(f"{network.describe()}, 8 pixels/beat, MNIST test set")
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)


def plot_pareto(rows, path):
    """Images/s against LUTs, one point per configuration (xc7 LUTs where measured, else
    ECP5 LUT4), beside the published points of :data:`bs4nn.sim.bench.ANCHORS`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .bench import ANCHORS

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        luts = row.get("xc7_lut") or row["lut4"]
        axis.loglog(luts, row["images_per_s"], "o", color="tab:blue")
        axis.annotate(f"{row['lanes']}/{row['pixels_per_beat']}/{row['events_per_cycle']}",
                      (luts, row["images_per_s"]), textcoords="offset points", xytext=(4, 4),
                      fontsize=8)
    for anchor in ANCHORS:
        if "pareto" in anchor:
            rate, luts = anchor["pareto"]
            axis.loglog(luts, rate, "s", markerfacecolor="none", color="tab:gray")
            axis.annotate(f"{anchor['design']} (published)", (luts, rate),
                          textcoords="offset points", xytext=(6, -12), fontsize=8,
                          color="tab:gray")
    points = [row.get("xc7_lut") or row["lut4"] for row in rows]
    points += [anchor["pareto"][1] for anchor in ANCHORS if "pareto" in anchor]
    low, high = min(points) / 2, max(points) * 8   # room for the labels on the right
    axis.loglog([low, high], [135 * low, 135 * high], "--", color="tab:gray", linewidth=0.8,
                label="135 images/s per LUT (about FINN SFC-max's)")
    axis.set_xlim(low, high)
    rates = [row["images_per_s"] for row in rows]
    rates += [anchor["pareto"][0] for anchor in ANCHORS if "pareto" in anchor]
    axis.set_ylim(min(rates) / 4, max(rates) * 4)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_xlabel("LUTs (bs4nn: Xilinx 7-series LUTs from synth_xilinx, else ECP5 LUT4)")
    axis.set_ylabel("images/s")
    axis.set_title("bs4nn configurations (LANES/pixels per beat/events per cycle, measured)\n"
                   "and published designs", fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)


def _implement_on_ray(network, out_dir, configurations, jobs, address, xilinx, frequency):
    """:func:`implement_configuration` of each configuration as a Ray task, by configuration.
    A failed configuration raises its error once the others have finished (and are cached)."""
    with ray_session(address, num_cpus=jobs) as ray:
        task = ray.remote(num_cpus=1)(implement_configuration)
        network_ref = ray.put(network)
        pending = {task.remote(network_ref, *config, out_dir / work_dir_name(*config), xilinx,
                               frequency): config for config in configurations}
        done, errors = {}, []
        with tqdm(total=len(pending), desc="report", unit="config") as bar:
            while pending:
                (ready,), _ = ray.wait(list(pending), num_returns=1)
                config = pending.pop(ready)
                bar.update()
                try:
                    done[config] = get(ray, ready)
                except Exception as error:  # raised once the others are done (and cached)
                    errors.append(error)
                else:
                    lanes, ppb, events = config
                    tqdm.write(f"LANES={lanes} pixels/beat={ppb} events/cycle={events}: "
                               f"{done[config]['tool_seconds']} s of tools")
    if errors:
        raise errors[0]
    return done


def write_report(network, images, out_dir, configurations, *, jobs=None, address=None,
                 xilinx=True, frequency=125, weights_name=""):
    """Implement each ``(lanes, pixels_per_beat, events_per_cycle)`` of ``configurations`` as
    Ray tasks (on a local Ray with ``jobs`` CPUs, default all, or on the cluster at
    ``address``) and write
    ``report.md``, ``report.json``, ``cycles_vs_lanes.png`` and ``pareto.png`` into
    ``out_dir``.

    ``images``: uint8 ``(n, n_in)``, the images the cycles per image are taken over (the MNIST
    test set). Returns the rows, one dict per configuration.
    """
    out_dir = Path(out_dir).resolve()
    done = _implement_on_ray(network, out_dir, configurations, jobs, address, xilinx, frequency)
    rows = []
    for lanes, ppb, events in configurations:
        row = dict(done[lanes, ppb, events])
        del row["key"]
        row.setdefault("events_per_cycle", events)
        row["cycles_per_image"] = round(cycles_per_image(network, lanes, ppb, images, events), 1)
        row["images_per_s"] = round(row["fmax_mhz"] * 1e6 / row["cycles_per_image"])
        row["images_per_s_per_lut"] = round(row["images_per_s"] / max(row["lut4"], 1), 1)
        if "xc7_lut" in row:
            row["images_per_s_per_xc7_lut"] = round(row["images_per_s"] / max(row["xc7_lut"], 1),
                                                    1)
        rows.append(row)
        tqdm.write(", ".join(f"{key} {value}" for key, value in row.items()))
    plot_pareto(rows, out_dir / "pareto.png")
    plot_cycles_vs_lanes(network, images, out_dir / "cycles_vs_lanes.png",
                         [1, 4, 16, 64, 150, 300] + [lanes for lanes, *_ in configurations])
    header = (f"Implementation of `{weights_name}` ({network.describe()}): Yosys `synth_ecp5` + "
              f"nextpnr-ecp5 on the LFE5U-85F (CABGA381, target {frequency:.0f} MHz); "
              "Xilinx 7-series counts from `synth_xilinx` (synthesis only, no timing). "
              "Cycles per image: cycle model over the 10,000 MNIST test images streamed back "
              "to back.\n")
    with atomic_write(out_dir / "report.md", "w") as f:
        f.write(header + "\n" + markdown_table(rows) + "\n")
    with atomic_write(out_dir / "report.json", "w") as f:
        json.dump({"weights": str(weights_name), "device": "LFE5U-85F CABGA381", "rows": rows},
                  f, indent=2)
    return rows
