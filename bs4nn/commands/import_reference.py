"""``bs4nn import-reference``: the authors' reference weights as a weights file."""

import shlex
import sys

from bs4nn.model.reference import import_reference, load_arrays


def add_arguments(parser):
    parser.add_argument("arrays", nargs="+", help="latent weights per layer (.npy), shaped "
                        "(n_out, n_in, 1) as the authors' reference code saves them")
    parser.add_argument("--factors", nargs="+", type=float, required=True,
                        help="the learned threshold factor f of each layer (threshold 100/f)")
    parser.add_argument("-o", "--out", required=True)
    parser.add_argument("--dataset", default="mnist", help="recorded in the metadata")


def run(args):
    arrays = load_arrays(args.arrays)
    metadata = {"dataset": args.dataset, "source": "authors' reference weights",
                "command": "bs4nn " + shlex.join(sys.argv[1:]) if sys.argv[1:] else "",
                "factors": args.factors}
    network = import_reference(arrays, args.factors, metadata)
    network.save(args.out)
    thresholds = ", ".join(str(int(layer.thresholds[0])) for layer in network.layers)
    print(f"wrote {args.out} ({network.describe()}, thresholds {thresholds})")
    return 0
