"""``bs4nn verilog``: generate the accelerator's Verilog, its description and lint waivers."""

import json

from bs4nn.gen.build import write_design
from bs4nn.gen.pixel_input import PIXELS_PER_BEAT_CHOICES
from bs4nn.gen.top import WEIGHT_STORAGE_CHOICES

from .options import add_events_per_cycle_argument, add_weights_argument


def add_arguments(parser):
    add_weights_argument(parser)
    parser.add_argument("--lanes", type=int, default=0,
                        help="counters of the first hidden layer per cycle (0: all neurons)")
    parser.add_argument("--pixels-per-beat", type=int, default=8,
                        help=f"pixels per input beat "
                             f"({', '.join(map(str, PIXELS_PER_BEAT_CHOICES))})")
    add_events_per_cycle_argument(parser)
    parser.add_argument("--weight-storage", default="rom", choices=WEIGHT_STORAGE_CHOICES,
                        help="rom: weights fixed at generation; ram: adds the w_axis load "
                             "stream; spram: as ram, with the first layer's columns in iCE40UP5K "
                             "SB_SPRAM256KA instances (no initial contents: load them through "
                             "w_axis; simulate with Yosys's share/ice40/cells_sim.v)")
    parser.add_argument("--debug-events", action="store_true",
                        help="add the hidden spike event stream dbg_axis")
    parser.add_argument("-o", "--out-dir", default="build", help="output folder (default build)")


def run(args):
    verilog_path, info_path, waivers_path = write_design(
        args.weights, args.out_dir, lanes=args.lanes, pixels_per_beat=args.pixels_per_beat,
        events_per_cycle=args.events_per_cycle, weight_storage=args.weight_storage,
        debug_events=args.debug_events)
    info = json.loads(info_path.read_text())
    print(f"wrote {verilog_path}, {info_path} and {waivers_path} ({info['network']}, "
          f"lanes={info['parameters']['lanes']}, "
          f"pixels_per_beat={info['parameters']['pixels_per_beat']}, "
          f"events_per_cycle={info['parameters']['events_per_cycle']}, "
          f"{info['generation_seconds']} s)")
    return 0
