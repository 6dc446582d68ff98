"""Synthesis and place-and-route figures for several configurations (``bs4nn report``).

For each (LANES, PIXELS_PER_BEAT, EVENTS_PER_CYCLE) the design is generated from the weights
file and measured on one of :data:`DEVICES`, then combined with the cycle model's cycles per
image on the MNIST test set. On the ECP5 (``ecp5-85f``) the bare ``bs4nn`` IP is synthesized
with Yosys (LUT4, FF, DP16KD), placed and routed with nextpnr on the LFE5U-85F (Fmax) and
synthesized for Xilinx 7-series (LUT6, FF, BRAM; no timing). On the iCE40UP5K
(``ice40-up5k``) the bare IP has more ports than the SG48 package has pins, so the row is the
iCEBreaker board build (:mod:`bs4nn.sim.bitstream`: the accelerator behind the UART link):
Yosys's iCE40 cells, nextpnr-ice40's placed logic cells and Fmax.
:func:`write_report` writes ``report.md``, ``report.json``, ``cycles_vs_lanes.png`` and
``pareto.png`` to the output folder, and each ECP5 configuration's folder gets
``placement.png`` (:mod:`.placement`: where the cells went, the critical path over them,
where ``router2`` found its wires overused).

The configurations run as Ray tasks, one CPU each: on a Ray started on this machine, or on
an existing cluster (whose nodes must all see the output folder, where each configuration's
figures are cached).
"""

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from bs4nn.model.cluster import get, ray_session
from bs4nn.model.network import atomic_write

from . import implement, placement

COLUMNS = [
    ("device", "device"), ("lanes", "LANES"), ("pixels_per_beat", "pixels/beat"),
    ("events_per_cycle", "events/cycle"), ("lut4", "LUT4"),
    ("ccu2c", "CCU2C"), ("lutram", "DPR16X4"), ("comb", "placed LUTs"), ("ff", "FF"),
    ("dp16kd", "DP16KD"), ("logic_cells", "logic cells"), ("sb_lut4", "SB_LUT4"),
    ("sb_dff", "SB_DFF"), ("sb_ram40_4k", "SB_RAM40_4K"), ("sb_spram256ka", "SB_SPRAM256KA"),
    ("weights_in", "weights in"), ("fmax_mhz", "Fmax MHz"),
    ("input_to_reg_ns", "in → reg ns"), ("reg_to_output_ns", "reg → out ns"),
    ("cycles_per_image", "cycles/image"), ("images_per_s", "images/s"),
    ("images_per_s_per_lut", "images/s/LUT4"), ("xc7_lut", "xc7 LUT"), ("xc7_ff", "xc7 FF"),
    ("xc7_bram36", "xc7 BRAM36"), ("images_per_s_per_xc7_lut", "images/s/xc7 LUT"),
    ("not_routed", "not routed"),
]


@dataclass(frozen=True)
class Device:
    """A device the report measures the configurations on."""

    name: str
    #: The part, as the report's header and ``report.json`` name it.
    part: str
    #: Where the accelerator keeps its first layer's weights there.
    weight_storage: str
    #: The default nextpnr target, MHz.
    frequency: float
    #: The configurations its report measures by default (None: :func:`configurations` of
    #: the default LANES, pixels per beat and compact LANES).
    configurations: tuple | None = None
    #: The ECP5's speed grade (one of :data:`~.implement.ECP5_SPEED_GRADES`; None elsewhere).
    speed_grade: int | None = None


#: The UP5K's 120 kbit of block RAM cannot hold a 784-600 layer's 470 kbit, and its SPRAM has
#: no initial contents: there the weights live in SPRAM, loaded after power-up
#: (``weight_storage="spram"``), at 8 lanes and one pixel per beat (the iCEBreaker's build).
#: The LFE5U-85F by default at speed grade 6, the slowest (nextpnr's default; the ULX3S board's
#: part), and at 8, the fastest, on request.
DEVICES = {
    "ecp5-85f": Device("ecp5-85f", "LFE5U-85F-6 CABGA381", "rom", 125, speed_grade=6),
    "ecp5-85f-8": Device("ecp5-85f-8", "LFE5U-85F-8 CABGA381", "rom", 125, speed_grade=8),
    "ice40-up5k": Device("ice40-up5k", "iCE40UP5K SG48, iCEBreaker board build (UART link "
                         "included)", "spram", 30, configurations=((8, 1, 1),)),
}
DEFAULT_DEVICE = "ecp5-85f"
#: The board whose top the UP5K rows measure.
UP5K_BOARD = "icebreaker"


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


#: LANES of the default report's smallest configurations, each at one pixel per beat (folded,
#: with the compact scheduler).
COMPACT_LANES = (16, 64)


def configurations(lanes, pixels_per_beat, events_per_cycle=(), compact_lanes=()):
    """``(lanes, pixels_per_beat, events_per_cycle)`` triples: every LANES at the first pixels
    per beat, then every pixels per beat at the last LANES (one event per cycle), then every
    events per cycle at the last LANES and :data:`FAST_PIXELS_PER_BEAT`, then every compact
    LANES at one pixel per beat, without repeats."""
    return list(dict.fromkeys([(n, pixels_per_beat[0], 1) for n in lanes]
                              + [(lanes[-1], ppb, 1) for ppb in pixels_per_beat]
                              + [(lanes[-1], FAST_PIXELS_PER_BEAT, e)
                                 for e in events_per_cycle]
                              + [(n, 1, 1) for n in compact_lanes]))


def work_dir_name(lanes, pixels_per_beat, events_per_cycle):
    """The folder of a configuration's tools and saved figures."""
    name = f"lanes{lanes}_ppb{pixels_per_beat}"
    return name if events_per_cycle == 1 else f"{name}_e{events_per_cycle}"


def cycles_per_image(network, lanes, pixels_per_beat, images, events_per_cycle=1,
                     weight_storage="rom"):
    """Mean result-to-result cycles over ``images`` streamed back to back (cycle model)."""
    from .cycle_model import predict

    result_cycles = predict(network, images, lanes=lanes, pixels_per_beat=pixels_per_beat,
                            events_per_cycle=events_per_cycle, weight_storage=weight_storage)
    return float(result_cycles[-1] + 1) / images.shape[0]


def cache_key(design, xilinx, frequency, speed_grade):
    """What a configuration's saved ECP5 figures hold for: its Verilog and the tool settings
    (``speed_grade`` has no default, so that no caller keys another grade's figures as
    grade 6's)."""
    return {"verilog_sha256": hashlib.sha256(design.verilog.encode()).hexdigest(),
            "xilinx": xilinx, "frequency": frequency, "speed_grade": speed_grade,
            "router2_patience": implement.ROUTER2_PATIENCE, "output_registers_folded": True}


def board_cache_key(plan, frequency, device):
    """What a configuration's saved board-build figures hold for: every file of its build plan
    (design, constraints, scripts) and the device."""
    digest = hashlib.sha256()
    for name, content in sorted(plan.files.items()):
        digest.update(name.encode())
        digest.update(content.encode() if isinstance(content, str) else content)
    return {"plan_sha256": digest.hexdigest(), "frequency": frequency, "device": device}


def _weights_in(network, row, cell_types):
    """Where the first layer's weights are: the first of ``cell_types`` (key, cell) whose
    cells named after the weight memory hold them all, else "LUTs"."""
    rom_bits = network.layers[0].n_in * network.layers[0].n_out
    for key, cell in cell_types:
        if row[key] * implement.BLOCK_RAM_BITS[cell] >= rom_bits:
            return f"{row[key]} {cell}"
    return "LUTs"


def _saved_or_measured(work_dir, key, measure):
    """The figures saved in ``work_dir/row.json`` for ``key``, else ``measure()``'s, saved with
    the key and the tools' seconds, so that an interrupted report resumes where it stopped."""
    saved = work_dir / "row.json"
    if saved.exists():
        row = json.loads(saved.read_text())
        if row.get("key") == key:
            return row
    start = time.perf_counter()
    row = measure()
    row["tool_seconds"] = round(time.perf_counter() - start, 1)
    row["key"] = key
    with atomic_write(saved, "w") as f:
        json.dump(row, f, indent=2)
    return row


def implement_configuration(network, lanes, pixels_per_beat, events_per_cycle, work_dir, xilinx,
                            frequency, device=DEFAULT_DEVICE):
    """The tools' figures for one configuration on ``device`` (a key of :data:`DEVICES`).
    They are kept in ``work_dir/row.json`` with the design's hash and the tool settings, and
    reused while those are unchanged. ``xilinx``: also ``synth_xilinx`` (ECP5 rows only)."""
    work_dir.mkdir(parents=True, exist_ok=True)
    row = {"device": device, "lanes": lanes or network.layers[0].n_out,
           "pixels_per_beat": pixels_per_beat, "events_per_cycle": events_per_cycle}
    if device == "ice40-up5k":
        return _implement_up5k(network, row, work_dir, frequency)
    from bs4nn.gen.build import generate

    design = generate(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                      events_per_cycle=events_per_cycle)
    speed_grade = DEVICES[device].speed_grade

    def measure():
        verilog = work_dir / "bs4nn.v"
        verilog.write_text(design.verilog)
        row.update(implement.synth_ecp5(verilog, work_dir))
        row.update(implement.place_and_route_ecp5(work_dir, frequency, speed_grade=speed_grade))
        if "fmax_mhz" in row:   # routed
            placement.plot_placement(
                work_dir / "routed.json", work_dir / "pnr.json", work_dir / "placement.png",
                work_dir.name, work_dir / "router2" / "router2_congestion_by_coordinate_1.csv")
        if xilinx:
            row.update(implement.synth_xilinx(verilog, work_dir))
        row["weights_in"] = _weights_in(network, row, [("weight_dp16kd", "DP16KD")])
        return row

    return _saved_or_measured(work_dir, cache_key(design, xilinx, frequency, speed_grade),
                              measure)


def _implement_up5k(network, row, work_dir, frequency):
    """The iCEBreaker board build of a configuration, at ``frequency`` MHz."""
    from bs4nn.gen.board import BOARDS

    from .bitstream import board_core, board_plan, implement_board

    board = BOARDS[UP5K_BOARD]
    core = board_core(board, network, lanes=row["lanes"],
                      pixels_per_beat=row["pixels_per_beat"],
                      events_per_cycle=row["events_per_cycle"],
                      weight_storage=DEVICES["ice40-up5k"].weight_storage)
    plan = board_plan(board, core, frequency_mhz=frequency)

    def measure():
        row.update(implement_board(board, plan, work_dir))
        row["weights_in"] = _weights_in(network, row, [("weight_spram256ka", "SB_SPRAM256KA"),
                                                       ("weight_ram40_4k", "SB_RAM40_4K")])
        return row

    return _saved_or_measured(work_dir, board_cache_key(plan, frequency, "ice40-up5k"), measure)


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


def plot_cycles_vs_lanes(network, images, path, lanes_list, rows=()):
    """Cycles per image against LANES at 8 and at 1 pixel per beat (cycle model) and, beside
    it, the LUT4 of the measured ECP5 ``rows`` of one event per cycle at those pixels per
    beat (1: folded with the compact scheduler)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n_hidden = network.layers[0].n_out
    lanes_list = sorted({lanes for lanes in lanes_list if 1 <= lanes <= n_hidden} | {n_hidden})
    series = {8: "8 pixels/beat", 1: "1 pixel/beat (compact scheduler when folded)"}
    measured = {ppb: sorted((row["lanes"], row["lut4"]) for row in rows if "lut4" in row
                            and row["pixels_per_beat"] == ppb and row["events_per_cycle"] == 1)
                for ppb in series}
    measured = {ppb: points for ppb, points in measured.items() if points}
    figure, axes = plt.subplots(1, 2 if measured else 1, figsize=(12 if measured else 6, 4.5),
                                squeeze=False)
    axis = axes[0][0]
    for ppb, label in series.items():
        cycles = [cycles_per_image(network, lanes, ppb, images) for lanes in lanes_list]
        axis.loglog(lanes_list, cycles, "o-", label=label)
        for lanes, value in zip(lanes_list, cycles, strict=True):
            axis.annotate(f"{value:.0f}", (lanes, value), textcoords="offset points",
                          xytext=(4, 4), fontsize=8)
    axis.set_xlabel("LANES (hidden neurons updated per cycle)")
    axis.set_ylabel("cycles per image (back to back)")
    axis.set_title(f"{network.describe()}, MNIST test set (cycle model)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    if measured:
        axis = axes[0][1]
        for ppb, points in measured.items():
            axis.semilogx(*zip(*points, strict=True), "s-", label=series[ppb])
            for lanes, luts in points:
                axis.annotate(f"{luts:,}", (lanes, luts), textcoords="offset points",
                              xytext=(4, 4), fontsize=8)
        top = max(luts for points in measured.values() for _, luts in points)
        axis.set_ylim(0, top * 1.15)
        axis.set_xlabel("LANES (hidden neurons updated per cycle)")
        axis.set_ylabel("LUT4 (Yosys synth_ecp5)")
        axis.set_title("ECP5 LUT4, 1 event/cycle")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    shown = sorted(set(lanes_list) | {lanes for points in measured.values() for lanes, _ in points})
    for axis in axes[0]:
        axis.set_xscale("log")
        axis.minorticks_off()
        axis.set_xticks(shown, [str(lanes) for lanes in shown])
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)


def _luts(row):
    """A row's LUTs for the Pareto picture: xc7 LUTs, else ECP5 LUT4, else iCE40 logic cells."""
    return row.get("xc7_lut") or row.get("lut4") or row["logic_cells"]


def plot_pareto(rows, path):
    """Images/s against LUTs, one point per configuration (xc7 LUTs where measured, else
    ECP5 LUT4, else iCE40 logic cells), beside the published points of
    :data:`bs4nn.sim.bench.ANCHORS`."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .bench import ANCHORS

    rows = [row for row in rows if "images_per_s" in row]   # routed
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        luts = _luts(row)
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
    points = [_luts(row) for row in rows]
    points += [anchor["pareto"][1] for anchor in ANCHORS if "pareto" in anchor]
    low, high = min(points) / 2, max(points) * 8   # room for the labels on the right
    axis.loglog([low, high], [135 * low, 135 * high], "--", color="tab:gray", linewidth=0.8,
                label="135 images/s per LUT (about FINN SFC-max's)")
    axis.set_xlim(low, high)
    rates = [row["images_per_s"] for row in rows]
    rates += [anchor["pareto"][0] for anchor in ANCHORS if "pareto" in anchor]
    axis.set_ylim(min(rates) / 4, max(rates) * 4)
    axis.legend(loc="upper left", fontsize=8)
    axis.set_xlabel("LUTs (bs4nn: Xilinx 7-series LUTs from synth_xilinx, else ECP5 LUT4, "
                    "else placed iCE40 logic cells)")
    axis.set_ylabel("images/s")
    axis.set_title("bs4nn configurations (LANES/pixels per beat/events per cycle, measured)\n"
                   "and published designs", fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)


def _implement_on_ray(network, out_dir, configurations, jobs, address, xilinx, frequency,
                      device):
    """:func:`implement_configuration` of each configuration as a Ray task, by configuration.
    A failed configuration raises its error once the others have finished (and are cached)."""
    with ray_session(address, num_cpus=jobs) as ray:
        task = ray.remote(num_cpus=1)(implement_configuration)
        network_ref = ray.put(network)
        pending = {task.remote(network_ref, *config, out_dir / work_dir_name(*config), xilinx,
                               frequency, device): config for config in configurations}
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
                 xilinx=True, frequency=125, weights_name="", device=DEFAULT_DEVICE):
    """Implement each ``(lanes, pixels_per_beat, events_per_cycle)`` of ``configurations`` on
    ``device`` (a key of :data:`DEVICES`) as Ray tasks (on a local Ray with ``jobs`` CPUs,
    default all, or on the cluster at ``address``) and write
    ``report.md``, ``report.json``, ``cycles_vs_lanes.png`` and ``pareto.png`` into
    ``out_dir``.

    ``images``: uint8 ``(n, n_in)``, the images the cycles per image are taken over (the MNIST
    test set). Returns the rows, one dict per configuration.
    """
    out_dir = Path(out_dir).resolve()
    done = _implement_on_ray(network, out_dir, configurations, jobs, address, xilinx, frequency,
                             device)
    rows = []
    for lanes, ppb, events in configurations:
        row = dict(done[lanes, ppb, events])
        del row["key"]
        row.setdefault("device", device)   # saved before rows named their device
        row.setdefault("events_per_cycle", events)
        row["cycles_per_image"] = round(cycles_per_image(
            network, lanes, ppb, images, events, DEVICES[device].weight_storage), 1)
        if "fmax_mhz" in row:   # else not routed
            row["images_per_s"] = round(row["fmax_mhz"] * 1e6 / row["cycles_per_image"])
            for luts, key in (("lut4", "images_per_s_per_lut"),
                              ("xc7_lut", "images_per_s_per_xc7_lut")):
                if luts in row:
                    row[key] = round(row["images_per_s"] / max(row[luts], 1), 1)
        rows.append(row)
        tqdm.write(", ".join(f"{key} {value}" for key, value in row.items()))
    plot_pareto(rows, out_dir / "pareto.png")
    plot_cycles_vs_lanes(network, images, out_dir / "cycles_vs_lanes.png",
                         [1, 4, 16, 64, 150, 300] + [lanes for lanes, *_ in configurations],
                         rows)
    header = (f"Implementation of `{weights_name}` ({network.describe()}): "
              f"{_tools_sentence(device, frequency)} Cycles per image: cycle model over the "
              f"10,000 MNIST test images streamed back to back.\n")
    with atomic_write(out_dir / "report.md", "w") as f:
        f.write(header + "\n" + markdown_table(rows) + "\n")
    with atomic_write(out_dir / "report.json", "w") as f:
        json.dump({"weights": str(weights_name), "device": DEVICES[device].part, "rows": rows},
                  f, indent=2)
    return rows


def _tools_sentence(device, frequency):
    """How the report's rows on ``device`` were measured, for its header."""
    if device == "ice40-up5k":
        return (f"the iCEBreaker board build (the accelerator behind the UART link and its "
                f"pins: the bare IP has more ports than the SG48 has pins), weights "
                f"`{DEVICES[device].weight_storage}`, Yosys `synth_ice40 "
                f"{implement.ICE40_SYNTH_OPTIONS}` + nextpnr-ice40 on the iCE40UP5K (SG48, "
                f"target {frequency:g} MHz); logic cells are nextpnr's placed ICESTORM_LC.")
    return (f"Yosys `synth_ecp5` + nextpnr-ecp5 on the LFE5U-85F (CABGA381, speed grade "
            f"{DEVICES[device].speed_grade}, target {frequency:.0f} MHz); Xilinx 7-series counts "
            f"from `synth_xilinx` (synthesis only, no timing).")
