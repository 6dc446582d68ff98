"""``bs4nn sweep``: a hyperparameter search over ``bs4nn train``'s options on Ray Tune; the
work is :func:`~bs4nn.model.train.sweep.run_sweep`, the search space
:class:`~bs4nn.model.train.space.SearchSpace`."""

import sys

from ..model.errors import UserError
from ..model.train.config import TrainConfig
from ..model.train.space import SearchSpace
from .train import add_config_arguments

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    space = parser.add_argument_group("search space")
    space.add_argument("--space", metavar="FILE",
                       help="TOML file with [fixed], [grid] and [random] tables and samples "
                            "(see the README)")
    space.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                       help="every value of a bs4nn train option, e.g. surrogate=3,10 "
                            "(repeatable; the grids combine)")
    space.add_argument("--random", action="append", default=[], metavar="NAME=KIND:A,B",
                       help="a bs4nn train option drawn per trial: uniform:LOW,HIGH, "
                            "loguniform:LOW,HIGH, randint:LOW,HIGH or choice:V1,V2 "
                            "(repeatable)")
    space.add_argument("--samples", type=int, default=1,
                       help="runs of the grid, random options drawn anew each (default 1, "
                            "or the file's)")
    space.add_argument("--search-seed", type=int, default=0,
                       help="seed of the random options' draws (default 0)")
    running = parser.add_argument_group("how the sweep runs")
    running.add_argument("--asha", action="store_true",
                         help="stop poor trials early (ASHA on the validation accuracy)")
    running.add_argument("--grace-period", type=int, default=1, metavar="EPOCHS",
                         help="ASHA: epochs every trial runs before it may be stopped "
                              "(default 1)")
    running.add_argument("--reduction-factor", type=float, default=2,
                         help="ASHA: keep the best 1/η of the trials at each rung (default 2)")
    running.add_argument("--address", default=None,
                         help="an existing Ray cluster (auto, or HOST:PORT); default: a Ray "
                              "started on this machine")
    running.add_argument("--cpus-per-trial", type=int, default=1,
                         help="CPUs each trial asks for (default 1: one trial per core)")
    running.add_argument("--memory-per-trial", type=float, default=2.0, metavar="GIB",
                         help="memory each trial asks for, in GiB (default 2)")
    running.add_argument("-o", "--out-dir", default="runs/sweep",
                         help="trials, Tune's experiment and the table (default runs/sweep); "
                              "on a cluster, a folder every node sees")
    add_config_arguments(parser.add_argument_group(
        "bs4nn train options every trial shares (the trainer's defaults otherwise)"),
        defaults=False)


def space_from_args(args):
    """The checked :class:`SearchSpace` of the file and the command line."""
    fixed = {name: value for name, value in vars(args).items()
             if name in TrainConfig.__dataclass_fields__}
    on_command_line = SearchSpace.from_specs(fixed, args.grid, args.random, args.samples)
    space = (SearchSpace.from_file(args.space).merged(on_command_line) if args.space
             else on_command_line)
    if not space.swept and space.samples == 1:
        raise UserError("nothing to sweep: give --grid, --random, --samples or --space")
    return space


def run(args):
    from ..model.train.sweep import Asha, Resources, run_sweep, summary_table

    space = space_from_args(args)
    resources = Resources(args.cpus_per_trial, args.memory_per_trial)
    asha = Asha(args.grace_period, args.reduction_factor) if args.asha else None
    summary = run_sweep(space, args.out_dir, resources=resources, asha=asha,
                        address=args.address, search_seed=args.search_seed)
    print(summary_table(summary))
    out_dir, best = summary["out_dir"], summary["best"]
    print(f"wrote {out_dir}/sweep.md, sweep.json and validation.png"
          + (f"; best: trial {best['trial']}, validation {best['validation']:.2%}, "
             f"{best['weights']}" if best else ""))
    if summary["interrupted"]:
        print("bs4nn sweep: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    failed = [trial for trial in summary["trials"] if trial["status"].startswith("error")]
    if failed:
        raise UserError(f"{len(failed)} of {len(summary['trials'])} trials failed, e.g. "
                        f"{failed[0]['trial']}: {failed[0]['status'].removeprefix('error: ')}")
    return 0
