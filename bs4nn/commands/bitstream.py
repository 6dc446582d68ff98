"""``bs4nn bitstream``: the accelerator behind a board top, built into a bitstream."""

from bs4nn.gen.board import BOARDS
from bs4nn.gen.top import WEIGHT_STORAGE_CHOICES
from bs4nn.model.network import Network
from bs4nn.sim.bitstream import build_bitstream

from .options import add_weights_argument


def add_arguments(parser):
    parser.add_argument("--board", required=True, choices=list(BOARDS))
    add_weights_argument(parser)
    parser.add_argument("--weight-storage", default=None, choices=WEIGHT_STORAGE_CHOICES,
                        help="rom: weights built in; ram: sent over the link after power-up "
                             "by bs4nn board run (default: the board's)")
    parser.add_argument("-o", "--out-dir", default=None,
                        help="build folder (default build/board/BOARD)")


def run(args):
    out_dir = args.out_dir or f"build/board/{args.board}"
    summary = build_bitstream(args.board, Network.load(args.weights), out_dir,
                              weights=args.weights, weight_storage=args.weight_storage)
    used = summary["utilization"]
    cells = ", ".join(f"{name} {value['used']:,}/{value['available']:,}"
                      for name, value in used.items()
                      if name in ("TRELLIS_COMB", "TRELLIS_FF", "DP16KD", "ICESTORM_LC",
                                  "ICESTORM_RAM"))
    fmax = ", ".join(f"{mhz} MHz" for mhz in summary["fmax_mhz"].values())
    print(f"wrote {summary['bitstream']}: clock {summary['clock_mhz']:g} MHz (Fmax {fmax}), "
          f"{summary['baud']:,} baud, {cells}; {summary['tool_seconds']} s of tools")
    board = BOARDS[args.board]
    print(f"program it with: {board.programmer} {summary['bitstream']}")
    return 0
