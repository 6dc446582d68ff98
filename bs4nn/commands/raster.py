"""``bs4nn raster``: the spike raster of one image as a PNG."""

from bs4nn.model.errors import UserError
from bs4nn.model.evaluation import load_matching, trained_elsewhere
from bs4nn.model.raster import write_raster

from .options import add_data_arguments, add_weights_argument, warn


def add_arguments(parser):
    add_weights_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--index", type=int, default=0, help="image index in the split")
    parser.add_argument("-o", "--out", default="build/raster.png")


def run(args):
    network, images, labels = load_matching(args.weights, args.dataset, args.split,
                                            args.data_dir)
    if not 0 <= args.index < labels.size:
        raise UserError(f"--index must be in 0..{labels.size - 1}, got {args.index}")
    note = trained_elsewhere(network, args.weights, args.dataset)
    if note:
        warn("raster", note)
    label = int(labels[args.index])
    result = write_raster(network, images[args.index], args.out,
                          f"{args.dataset} {args.split} #{args.index}: label {label}")
    print(f"wrote {args.out}: label {label}, predicted {int(result.predicted[0])}, decision "
          f"step {int(result.decision_step[0])}")
    return 0
