"""``bs4nn evaluate``: strict accuracy of a weights file on a dataset split."""

import time

from bs4nn.model.errors import UserError
from bs4nn.model.evaluation import (
    PREDICTIONS_HEADER,
    load_matching,
    summarize,
    trained_elsewhere,
    write_predictions,
)
from bs4nn.model.inference import infer

from .options import add_data_arguments, add_weights_argument, warn


def add_arguments(parser):
    add_weights_argument(parser)
    add_data_arguments(parser)
    parser.add_argument("--limit", type=int, help="only the first N images")
    parser.add_argument("--predictions", help=f"write a CSV: {PREDICTIONS_HEADER}")


def run(args):
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit must be positive, got {args.limit}")
    network, images, labels = load_matching(args.weights, args.dataset, args.split,
                                            args.data_dir)
    note = trained_elsewhere(network, args.weights, args.dataset)
    if note:
        warn("evaluate", note)
    if args.limit is not None:
        images, labels = images[: args.limit], labels[: args.limit]
    start = time.perf_counter()
    result = infer(network, images)
    seconds = time.perf_counter() - start
    print(f"{args.weights} ({network.describe()}) on {args.dataset} {args.split}: "
          f"{summarize(result, labels)}  [{labels.size} images in {seconds:.2f} s, "
          f"{labels.size / seconds:,.0f} images/s]")
    if args.predictions:
        write_predictions(args.predictions, labels, result.predicted, result.decision_step,
                          result.fired)
        print(f"predictions written to {args.predictions}")
    return 0
