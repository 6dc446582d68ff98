"""``bs4nn bench``: one table of measured figures beside the published anchors."""

import argparse
import dataclasses
import shlex
from pathlib import Path

from bs4nn.gen.pixel_input import PIXELS_PER_BEAT_CHOICES
from bs4nn.gen.scheduler import EVENTS_PER_CYCLE_CHOICES
from bs4nn.model.errors import UserError
from bs4nn.model.network import DEFAULT_WEIGHTS, Network
from bs4nn.sim.bench import write_bench

from . import train
from .options import add_events_per_cycle_argument


def add_arguments(parser):
    parser.add_argument("--lanes", type=int, default=0, help="0: all hidden neurons")
    parser.add_argument("--pixels-per-beat", type=int, default=8)
    add_events_per_cycle_argument(parser)
    parser.add_argument("--rtl-sample", type=int, default=200,
                        help="MNIST test images checked under Verilator (0: skip)")
    parser.add_argument("--skip-training", action="store_true",
                        help="do not time a training epoch")
    parser.add_argument("--report", default="build/report/report.json",
                        help="make report's JSON, for Fmax and LUTs")
    parser.add_argument("-o", "--out-dir", default="build/bench")


def one_epoch_of_recipe(network):
    """One epoch, no calibration, of the training command recorded in ``network``'s
    metadata (the shipped file records the recipe that made it)."""
    command = network.metadata.get("command", "")
    words = shlex.split(command)
    if words[:2] != ["bs4nn", "train"]:
        raise UserError(f"{DEFAULT_WEIGHTS}: records no bs4nn train command")
    parser = argparse.ArgumentParser(prog="bs4nn train")
    train.add_arguments(parser)
    config = train.config_from_args(parser.parse_args(words[2:]))
    return dataclasses.replace(config, epochs=1, calibrate=0)


def run(args):
    if args.pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
        raise UserError(f"--pixels-per-beat must be one of "
                        f"{', '.join(map(str, PIXELS_PER_BEAT_CHOICES))}, got "
                        f"{args.pixels_per_beat}")
    if (args.events_per_cycle not in EVENTS_PER_CYCLE_CHOICES
            or args.events_per_cycle > args.pixels_per_beat):
        raise UserError(f"--events-per-cycle must be one of "
                        f"{', '.join(map(str, EVENTS_PER_CYCLE_CHOICES))} and at most "
                        f"--pixels-per-beat ({args.pixels_per_beat}), got "
                        f"{args.events_per_cycle}")
    if args.rtl_sample < 0:
        raise UserError(f"--rtl-sample must be non-negative, got {args.rtl_sample}")
    network = Network.load(DEFAULT_WEIGHTS)
    n_hidden = network.layers[0].n_out
    if not 0 <= args.lanes <= n_hidden:
        raise UserError(f"--lanes must lie in 0..{n_hidden} (0: all), got {args.lanes}")
    lines = write_bench(network, args.out_dir, lanes=args.lanes,
                        pixels_per_beat=args.pixels_per_beat,
                        events_per_cycle=args.events_per_cycle, rtl_sample=args.rtl_sample,
                        training=None if args.skip_training else one_epoch_of_recipe(network),
                        report_path=args.report)
    out_dir = Path(args.out_dir)
    print("\n".join(lines))
    print(f"\nwrote {out_dir / 'bench.md'}, {out_dir / 'bench.json'}, "
          f"{out_dir / 'accuracy_vs_decision_step.png'}")
    return 0
