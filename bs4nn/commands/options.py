"""Options and messages shared by several sub-commands."""

import sys

from bs4nn.model import data
from bs4nn.model.network import DEFAULT_WEIGHTS


def add_weights_argument(parser):
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS,
                        help=f"weights file (default: the shipped {DEFAULT_WEIGHTS.name})")


def add_events_per_cycle_argument(parser):
    from bs4nn.gen.scheduler import EVENTS_PER_CYCLE_CHOICES

    parser.add_argument("--events-per-cycle", type=int, default=1,
                        help=f"input events integrated per cycle "
                             f"({', '.join(map(str, EVENTS_PER_CYCLE_CHOICES))}, at most the "
                             f"pixels per beat)")


def add_data_arguments(parser, splits=True):
    parser.add_argument("--dataset", choices=data.DATASETS, default="mnist")
    if splits:
        parser.add_argument("--split", choices=data.SPLITS, default="test")
    parser.add_argument("--data-dir", help="directory with the four standard IDX files "
                        "(default: $BS4NN_DATA_DIR, else the packaged dataset)")


def warn(command, message):
    """One warning line on stderr, in the form of the command line's errors."""
    print(f"bs4nn {command}: warning: {message}", file=sys.stderr)
