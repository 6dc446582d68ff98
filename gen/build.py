"""Generate the accelerator's Verilog (``bs4nn verilog``) and describe it (``bs4nn.json``).

``generate(network, ...)`` returns a :class:`Design` (Verilog text and an ``info`` dict);
``write_design(weights_path, out_dir, ...)`` writes ``bs4nn.v``, ``bs4nn.json`` and the
Verilator lint waivers ``bs4nn.vlt`` atomically.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib import wiring

from ..model import packing
from ..model.network import Network, atomic_write
from .schedule import Schedule
from .top import Accelerator, TopLevel, check_parameters

__all__ = ["Design", "generate", "write_design", "LINT_WAIVERS"]

#: Verilator waivers for the generated Verilog (``verilator --lint-only bs4nn.vlt bs4nn.v``).
LINT_WAIVERS = Path(__file__).resolve().with_name("lint.vlt")


@dataclass(frozen=True)
class Design:
    """A generated design: ``verilog`` (str, module ``bs4nn``) and ``info`` (JSON-able dict)."""

    verilog: str
    info: dict


def generate(network, *, lanes=0, pixels_per_beat=8, events_per_cycle=1, weight_storage="rom",
             debug_events=False):
    """Generate the accelerator for ``network``; every parameter is checked first
    (:func:`~.top.check_parameters`).

    Parameters
    ----------
    network : :class:`bs4nn.model.network.Network`, at least one hidden layer
    lanes : int
        Counters of the first hidden layer updated per cycle, ``1 .. n_hidden``; 0 means all.
    pixels_per_beat : int
        One of 1, 2, 4, 8, 16.
    events_per_cycle : int
        Input events integrated per cycle: one of 1, 2, 4, 8, 16, at most ``pixels_per_beat``.
    weight_storage : ``"rom"`` or ``"ram"``
    debug_events : bool
        Add the hidden spike event stream ``dbg_axis``.
    """
    # Checked before the Accelerator exists, which would otherwise be left unused.
    check_parameters(network, lanes, pixels_per_beat, weight_storage, debug_events,
                     events_per_cycle)
    started = time.perf_counter()
    accelerator = Accelerator(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                              events_per_cycle=events_per_cycle, weight_storage=weight_storage,
                              debug_events=debug_events)
    top = TopLevel(accelerator)
    text = verilog.convert(top, name="bs4nn", emit_src=False)
    info = _describe(network, accelerator, top, debug_events)
    info["generation_seconds"] = round(time.perf_counter() - started, 2)
    return Design(text, info)


def _describe(network, accelerator, top, debug_events):
    ports = {"clk": {"direction": "in", "width": 1}, "rst": {"direction": "in", "width": 1}}
    for name, member in top.signature.members.items():
        ports[name] = {"direction": "in" if member.flow == wiring.In else "out",
                       "width": Shape.cast(member.shape).width}
    hidden_sizes = [layer.n_out for layer in network.layers[:-1]]
    return {
        "module": "bs4nn",
        "network": network.describe(),
        "parameters": {
            "lanes": accelerator.lanes,
            "pixels_per_beat": accelerator.pixels_per_beat,
            "events_per_cycle": accelerator.events_per_cycle,
            "weight_storage": accelerator.weight_storage,
            "debug_events": debug_events,
            "pipelined": accelerator.pipelined,
            "n_inputs": network.n_inputs,
            "n_classes": network.n_classes,
            "hidden_sizes": hidden_sizes,
        },
        "ports": ports,
        "fields": {
            "pixel_beat": [[f"pixel{k}", packing.PIXEL_BITS]
                           for k in range(accelerator.pixels_per_beat)],
            "result": [list(field) for field in packing.result_fields(network.n_classes)],
            "debug_event": [list(field) for field in packing.debug_event_fields(hidden_sizes)],
        },
        "schedule": accelerator.schedule.as_dict(),
        "latency_formula": Schedule.formula(),
    }


def write_design(weights_path, out_dir, **params):
    """Generate from a weights file; write ``out_dir/bs4nn.v``, ``out_dir/bs4nn.json`` and
    ``out_dir/bs4nn.vlt`` (the lint waivers, :data:`LINT_WAIVERS`).

    Returns the three paths. Every file is written atomically.
    """
    network = Network.load(weights_path)
    design = generate(network, **params)
    out_dir = Path(out_dir)
    paths = out_dir / "bs4nn.v", out_dir / "bs4nn.json", out_dir / "bs4nn.vlt"
    info = dict(design.info, weights=str(weights_path))
    with atomic_write(paths[0], "w") as f:
        f.write(design.verilog)
    with atomic_write(paths[1], "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    with atomic_write(paths[2], "w") as f:
        f.write(LINT_WAIVERS.read_text())
    return paths
