"""Generate the accelerator's Verilog (``bs4nn verilog``) and describe it (``bs4nn.json``).

``generate(network, ...)`` returns a :class:`Design` (Verilog text and an ``info`` dict);
``write_design(weights_path, out_dir, ...)`` writes ``bs4nn.v`` and ``bs4nn.json`` atomically.
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
from .top import WEIGHT_STORAGE_CHOICES, Accelerator, TopLevel, check_parameters

__all__ = ["Design", "generate", "write_design", "add_arguments", "run", "DEFAULT_WEIGHTS"]

DEFAULT_WEIGHTS = "weights/mnist-784-600-10.npz"


@dataclass(frozen=True)
class Design:
    """A generated design: ``verilog`` (str, module ``bs4nn``) and ``info`` (JSON-able dict)."""

    verilog: str
    info: dict


def generate(network, *, lanes=0, pixels_per_beat=8, weight_storage="rom", debug_events=False):
    """Generate the accelerator for ``network``; every parameter is checked first
    (:func:`~.top.check_parameters`).

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
    # Checked before the Accelerator exists, which would otherwise be left unused.
    check_parameters(network, lanes, pixels_per_beat, weight_storage, debug_events)
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
            "pixel_beat": [[f"pixel{k}", packing.PIXEL_BITS]
                           for k in range(accelerator.pixels_per_beat)],
            "result": [list(field) for field in packing.result_fields(network.n_classes)],
            "debug_event": [list(field) for field in packing.debug_event_fields(hidden_sizes)],
        },
        "schedule": accelerator.schedule.as_dict(),
        "latency_formula": Schedule.formula(),
    }


def write_design(weights_path, out_dir, **params):
    """Generate from a weights file; write ``out_dir/bs4nn.v`` and ``out_dir/bs4nn.json``.

    Returns the two paths. Both files are written atomically.
    """
    network = Network.load(weights_path)
    design = generate(network, **params)
    out_dir = Path(out_dir)
    verilog_path, info_path = out_dir / "bs4nn.v", out_dir / "bs4nn.json"
    info = dict(design.info, weights=str(weights_path))
    with atomic_write(verilog_path, "w") as f:
        f.write(design.verilog)
    with atomic_write(info_path, "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    return verilog_path, info_path


def add_arguments(parser):
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"weights file (default {DEFAULT_WEIGHTS})")
    parser.add_argument("--lanes", type=int, default=0,
                        help="counters of the first hidden layer per cycle (0: all neurons)")
    parser.add_argument("--pixels-per-beat", type=int, default=8,
                        help="pixels per input beat (1, 2, 4, 8 or 16)")
    parser.add_argument("--weight-storage", default="rom", choices=WEIGHT_STORAGE_CHOICES,
                        help="rom: weights fixed at generation; ram: adds the w_axis load stream")
    parser.add_argument("--debug-events", action="store_true",
                        help="add the hidden spike event stream dbg_axis")
    parser.add_argument("-o", "--out-dir", default="build", help="output folder (default build)")


def run(args):
    verilog_path, info_path = write_design(
        args.weights, args.out_dir, lanes=args.lanes, pixels_per_beat=args.pixels_per_beat,
        weight_storage=args.weight_storage, debug_events=args.debug_events)
    info = json.loads(Path(info_path).read_text())
    print(f"wrote {verilog_path} and {info_path} ({info['network']}, "
          f"lanes={info['parameters']['lanes']}, "
          f"pixels_per_beat={info['parameters']['pixels_per_beat']}, "
          f"{info['generation_seconds']} s)")
    return 0
