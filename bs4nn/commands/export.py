"""``bs4nn export``: ``$readmemh`` ROM files of a weights file."""

from bs4nn.model.export import export_hex
from bs4nn.model.network import Network

from .options import add_weights_argument


def add_arguments(parser):
    add_weights_argument(parser)
    parser.add_argument("--lanes", type=int, default=0,
                        help="lanes of the first hidden layer's ROM words (0: all neurons)")
    parser.add_argument("-o", "--out-dir", default="build/rom")


def run(args):
    network = Network.load(args.weights)
    for path in export_hex(network, args.out_dir, args.lanes):
        print(f"wrote {path}")
    return 0
