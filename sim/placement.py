"""Where nextpnr put the design: a picture of a routed ECP5 netlist, for timing work.

:func:`plot_placement` reads the netlist nextpnr wrote (``--write routed.json``: every cell
carries its site in ``NEXTPNR_BEL``) and nextpnr's report (``--report pnr.json``) and draws
two maps of the die: each cell as a dot coloured by the part of the design it belongs to
(:data:`PARTS`, matched on its name), and the logic cells per tile with the critical path
drawn over it; with the heat maps of ``--router2-heatmap``, a third map: the wires ``router2``
found overused in its first iteration, per tile. Crowded corners are where ``router2`` runs
out of wires and where a path's routing delay comes from.
"""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

__all__ = ["PARTS", "part_of", "cell_sites", "congestion", "plot_placement"]

#: The parts of the design, as ``(label, regular expression on the cell name)``; a cell
#: belongs to the first part whose expression matches.
PARTS = (
    ("scheduler: walkers", r"^core\.scheduler\.(links|walker|step_head|rsel)"),
    ("scheduler: step finder", r"^core\.scheduler\.(chunks|steps|prepared|queue|r\d|read_step|"
                               r"issued|fifo|in_flight)"),
    ("scheduler: loader and other", r"^core\.scheduler\."),
    ("hidden layer", r"^core\.event_layer"),
    ("output layer", r"^core\.output_layer"),
    ("ports, framing, result queue, other", r""),
)
_PART_PATTERNS = [(label, re.compile(pattern)) for label, pattern in PARTS]
_SITE = re.compile(r"X(\d+)/Y(\d+)")
#: Cell types counted as logic in the density map (nextpnr's packed cells: a LUT or carry
#: half-slice, a flip-flop, a LUT RAM's write port).
LOGIC_TYPES = ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_RAMW")


def part_of(cell_name):
    """The label of the :data:`PARTS` entry of a cell."""
    return next(label for label, pattern in _PART_PATTERNS if pattern.match(cell_name))


def cell_sites(routed_json):
    """``(name, type, x, y)`` of every placed cell of a netlist written by nextpnr."""
    netlist = json.loads(Path(routed_json).read_text())
    module = next(m for m in netlist["modules"].values()
                  if int(m.get("attributes", {}).get("top", "0"), 2))
    sites = []
    for name, cell in module["cells"].items():
        site = _SITE.match(cell.get("attributes", {}).get("NEXTPNR_BEL", ""))
        if site:
            sites.append((name, cell["type"], int(site.group(1)), int(site.group(2))))
    return sites


def congestion(heatmap_csv):
    """``router2``'s overused wires per tile, ``(rows Y, columns X)``, from one of the files
    ``--router2-heatmap PREFIX`` writes (``PREFIX_congestion_by_coordinate_N.csv``: one line
    per column X, each ending in a comma)."""
    lines = Path(heatmap_csv).read_text().split()
    return np.array([[int(v) for v in line.split(",") if v] for line in lines]).T


def plot_placement(routed_json, report_json, path, title="", heatmap_csv=None):
    """Draw the maps of :mod:`this module <.placement>` into the PNG ``path``; with
    ``heatmap_csv`` (:func:`congestion`) a third map, of ``router2``'s congestion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = cell_sites(routed_json)
    report = json.loads(Path(report_json).read_text())
    width = max(x for *_, x, _ in sites) + 2
    height = max(y for *_, y in sites) + 2
    rng = np.random.default_rng(0)
    panels = 3 if heatmap_csv else 2
    figure, axes_list = plt.subplots(1, panels, figsize=(7.5 * panels, 6.2))
    left, right = axes_list[:2]
    parts = [part_of(name) for name, *_ in sites]
    by_part = Counter(parts)
    for index, (label, _) in enumerate(PARTS):
        points = np.array([(x, y) for (*_, x, y), part in zip(sites, parts, strict=True)
                           if part == label])
        if points.size == 0:
            continue
        jitter = rng.uniform(-0.4, 0.4, points.shape)
        left.scatter(*(points + jitter).T, s=1.5, color=plt.cm.tab10(index), linewidths=0,
                     label=f"{label} ({by_part[label]:,} cells)")
    rams = np.array([(x, y) for _, kind, x, y in sites if kind == "DP16KD"])
    if rams.size:
        left.scatter(*rams.T, s=14, marker="s", facecolors="none", edgecolors="black",
                     linewidths=0.6, label=f"block RAM ({len(rams)})")
    left.legend(loc="upper left", bbox_to_anchor=(0, -0.08), ncol=3, fontsize=7,
                markerscale=4, frameon=False)
    left.set_title("cells by part of the design")
    density = np.zeros((height, width))
    for _, kind, x, y in sites:
        if kind in LOGIC_TYPES:
            density[y, x] += 1
    shown = right.imshow(density, origin="upper", cmap="magma", interpolation="nearest",
                         extent=(-0.5, width - 0.5, height - 0.5, -0.5))
    figure.colorbar(shown, ax=right, fraction=0.035, label="logic cells per tile")
    critical = [p for p in report.get("critical_paths", [])
                if "<async>" not in (p["from"], p["to"])]   # register to register
    if critical:
        total, worst = max(((sum(step["delay"] for step in p["path"]), p["path"])
                            for p in critical), key=lambda pair: pair[0])
        locations = [worst[0]["from"]["loc"]] + [step["to"]["loc"] for step in worst]
        xs, ys = np.array(locations, dtype=float).T
        right.plot(xs, ys, "-o", color="cyan", markersize=3, linewidth=1.2)
        routing = sum(step["delay"] for step in worst if step["type"] == "routing")
        right.set_title(f"logic cells per tile; the critical path ({total:.1f} ns, "
                        f"{routing:.1f} of it routing) in cyan")
    else:
        right.set_title("logic cells per tile")
    if heatmap_csv:
        overused = congestion(heatmap_csv)
        shown = axes_list[2].imshow(overused, origin="upper", cmap="magma",
                                    interpolation="nearest",
                                    extent=(-0.5, overused.shape[1] - 0.5,
                                            overused.shape[0] - 0.5, -0.5))
        figure.colorbar(shown, ax=axes_list[2], fraction=0.035, label="overused wires")
        iteration = Path(heatmap_csv).stem.rsplit("_", 1)[-1]
        axes_list[2].set_title(f"router2's iteration {iteration}: {int(overused.sum()):,} "
                               f"overused wires")
    for axes in axes_list:
        axes.set_xlim(-1, width)
        axes.set_ylim(height, -1)
        axes.set_aspect("equal")
        axes.set_xlabel("tile column (X)")
        axes.set_ylabel("tile row (Y)")
    fmax = min((clock["achieved"] for clock in report.get("fmax", {}).values()), default=None)
    figure.suptitle(title + (f" — {fmax:.1f} MHz after routing" if fmax else ""))
    figure.tight_layout()
    with open(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)
