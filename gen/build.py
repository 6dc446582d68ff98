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
from ..model.errors import UserError
from ..model.network import Network, atomic_write
from .pixel_input import PIXELS_PER_BEAT_CHOICES
from .scheduler import EventScheduler
from .top import RESULT_CREDITS, WEIGHT_STORAGE_CHOICES, Accelerator, TopLevel

__all__ = ["Design", "generate", "write_design", "LATENCY_FORMULA", "LINT_WAIVERS"]

#: Verilator waivers for the generated Verilog (``verilator --lint-only bs4nn.vlt bs4nn.v``).
LINT_WAIVERS = Path(__file__).resolve().with_name("lint.vlt")

LATENCY_FORMULA = (
    "Per image k (n_k = pixels with value >= 1, G = lane groups, D = event_to_result): "
    "the image starts at S_k = max(W_{k-1} + finish_to_start, L_k + load_to_start, T_{k-C} + 1) "
    "where L_k is the "
    "cycle its last beat is accepted, W the cycle the previous image finished and T_{k-C} the "
    "transfer "
    "of the result C = credits images earlier; its start token leaves the scheduler at S_k + 1 "
    "and its j-th event (time order, lane group g) at S_k + 2 + j*G + g. "
    "If the output fires (decision_step d): the trigger is the last event of input step "
    "d - 1 - H (H hidden layers), n* = events with step <= that, and the result is written at "
    "R_k = S_k + 1 + n*·G + D; the image finishes at W_k = min(R_k, S_k + 1 + n_k·G). "
    "Otherwise R_k = S_k + 1 + n_k·G + D and W_k = S_k + 1 + n_k·G. "
    "The result is transferred at T_k = R_k + result_to_transfer (m_axis_tready high). "
    "Beats: frame k's first beat is accepted at max(L_{k-1} + 1, W_{k-2} + finish_to_load), "
    "then one per cycle. The constants are under 'schedule'. See bs4nn.sim.cycle_model."
)


@dataclass(frozen=True)
class Design:
    """A generated design: ``verilog`` (str, module ``bs4nn``) and ``info`` (JSON-able dict)."""

    verilog: str
    info: dict


def _check_parameters(network, lanes, pixels_per_beat, weight_storage, debug_events):
    if not isinstance(network, Network):
        raise UserError(f"network must be a Network, got {type(network).__name__}")
    if len(network.layers) < 2:
        raise UserError(f"the network {network.describe()} has no hidden layer; the accelerator "
                        f"needs at least one")
    n_hidden = network.layers[0].n_out
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 0 <= lanes <= n_hidden:
        raise UserError(f"lanes must be between 1 and {n_hidden} (or 0 for all {n_hidden}), "
                        f"got {lanes!r}")
    if isinstance(pixels_per_beat, bool) or pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
        raise UserError(f"pixels_per_beat must be one of "
                        f"{', '.join(map(str, PIXELS_PER_BEAT_CHOICES))}, got {pixels_per_beat!r}")
    if weight_storage not in WEIGHT_STORAGE_CHOICES:
        raise UserError(f"weight_storage must be one of {', '.join(WEIGHT_STORAGE_CHOICES)}, "
                        f"got {weight_storage!r}")
    if not isinstance(debug_events, bool):
        raise UserError(f"debug_events must be True or False, got {debug_events!r}")


def generate(network, *, lanes=0, pixels_per_beat=8, weight_storage="rom", debug_events=False):
    """Generate the accelerator for ``network``; every parameter is checked first.

    Parameters
    ----------
    network : :class:`bs4nn.model.network.Network`, at least one hidden layer
    lanes : int
        Counters of the first hidden layer updated per cycle, ``1 .. n_hidden``; 0 means all.
    pixels_per_beat : int
        One of 1, 2, 4, 8, 16.
    weight_storage : ``"rom"`` or ``"ram"``
    debug_events : bool
        Add the hidden spike event stream ``dbg_axis``.
    """
    _check_parameters(network, lanes, pixels_per_beat, weight_storage, debug_events)
    started = time.perf_counter()
    accelerator = Accelerator(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                              weight_storage=weight_storage, debug_events=debug_events)
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
            "weight_storage": accelerator.weight_storage,
            "debug_events": debug_events,
            "n_inputs": network.n_inputs,
            "n_classes": network.n_classes,
            "hidden_sizes": hidden_sizes,
        },
        "ports": ports,
        "fields": {
            "pixel_beat": [[f"pixel{k}", 8] for k in range(accelerator.pixels_per_beat)],
            "result": [list(field) for field in packing.result_fields(network.n_classes)],
            "debug_event": [list(field) for field in packing.debug_event_fields(hidden_sizes)],
        },
        "schedule": {
            "beats_per_image": accelerator.n_beats,
            "lane_groups": accelerator.groups,
            "hidden_layers": len(hidden_sizes),
            "credits": RESULT_CREDITS,
            "event_to_result": accelerator.event_to_result,
            "load_to_start": EventScheduler.load_to_start,
            "finish_to_start": EventScheduler.finish_to_start,
            "finish_to_load": EventScheduler.finish_to_load,
            "result_to_transfer": accelerator.result_to_transfer,
        },
        "latency_formula": LATENCY_FORMULA,
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
