"""Where nextpnr put the design: a picture of a routed ECP5 netlist, for timing work.

:func:`plot_placement` reads the netlist nextpnr wrote (``--write routed.json``: every cell
carries its site in ``NEXTPNR_BEL``) and nextpnr's report (``--report pnr.json``) and draws
two maps of the die: each cell as a dot coloured by the part of the design it belongs to
(:data:`PARTS`, matched on its name), and the logic cells per tile with the critical path
drawn over it. Crowded corners are where ``router2`` runs out of wires and where a path's
routing delay comes from.
"""

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np

__all__ = ["PARTS", "part_of", "cell_sites", "plot_placement"]

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
#: Cell types counted as logic in the density map.
LOGIC_TYPES = ("TRELLIS_COMB", "TRELLIS_FF", "TRELLIS_RAMW", "LUT4", "CCU2C")


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


def plot_placement(routed_json, report_json, path, title=""):
    """Draw the two maps of :mod:`this module <.placement>` into the PNG ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = cell_sites(routed_json)
    report = json.loads(Path(report_json).read_text())
    width = max(x for *_, x, _ in sites) + 2
    height = max(y for *_, y in sites) + 2
    rng = np.random.default_rng(0)
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6.2))
    by_part = Counter(part_of(name) for name, *_ in sites)
    for index, (label, _) in enumerate(PARTS):
        points = np.array([(x, y) for name, _, x, y in sites if part_of(name) == label])
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
        worst = max(critical, key=lambda p: sum(step["delay"] for step in p["path"]))
        locations = [worst["path"][0]["from"]["loc"]] + [step["to"]["loc"]
                                                         for step in worst["path"]]
        xs, ys = np.array(locations, dtype=float).T
        right.plot(xs, ys, "-o", color="cyan", markersize=3, linewidth=1.2)
        total = sum(step["delay"] for step in worst["path"])
        routing = sum(step["delay"] for step in worst["path"] if step["type"] == "routing")
        right.set_title(f"logic cells per tile; the critical path ({total:.1f} ns, "
                        f"{routing:.1f} of it routing) in cyan")
    else:
        right.set_title("logic cells per tile")
    for axes in (left, right):
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
