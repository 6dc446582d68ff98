"""``bs4nn report``: synthesis and place-and-route figures for several configurations."""

from pathlib import Path

from bs4nn.gen.pixel_input import PIXELS_PER_BEAT_CHOICES
from bs4nn.gen.scheduler import EVENTS_PER_CYCLE_CHOICES
from bs4nn.model.errors import UserError
from bs4nn.model.evaluation import load_matching
from bs4nn.sim import report

from .options import add_weights_argument


def add_arguments(parser):
    add_weights_argument(parser)
    parser.add_argument("--device", default=report.DEFAULT_DEVICE,
                        help=f"{', '.join(report.DEVICES)} (default {report.DEFAULT_DEVICE}: "
                             f"the LFE5U-85F at speed grade 6, the slowest; ecp5-85f-8 at 8, "
                             f"the fastest; the iCE40UP5K is measured on the iCEBreaker board "
                             f"build)")
    parser.add_argument("--lanes", type=int, nargs="+", default=None,
                        help="each at the first --pixels-per-beat (default: "
                             f"{' '.join(map(str, report.LANES))}; the UP5K: 8 at one pixel "
                             "per beat only)")
    parser.add_argument("--pixels-per-beat", type=int, nargs="+", default=None,
                        help="each at the last --lanes (default: "
                             f"{' '.join(map(str, report.PIXELS_PER_BEAT))})")
    parser.add_argument("--events-per-cycle", type=int, nargs="*", default=None,
                        help=f"each at the last --lanes and {report.FAST_PIXELS_PER_BEAT} "
                             f"pixels per beat (the others take one event per cycle; "
                             f"default: none)")
    parser.add_argument("--compact-lanes", type=int, nargs="*", default=None,
                        help="each at one pixel per beat: folded, with the compact scheduler "
                             f"(default: {' '.join(map(str, report.COMPACT_LANES))})")
    parser.add_argument("--jobs", type=int, default=None,
                        help="configurations implemented at once on this machine (default: "
                             "one per CPU)")
    parser.add_argument("--address", default=None,
                        help="implement on an existing Ray cluster (auto, or HOST:PORT), as "
                             "many at once as it has CPUs; default: a Ray started here")
    parser.add_argument("--no-xilinx", action="store_true",
                        help="skip synth_xilinx (which runs with the ECP5 only)")
    parser.add_argument("--frequency", type=float, default=None,
                        help="nextpnr target frequency in MHz (default: "
                             + ", ".join(f"{device.frequency:g} on the {name}"
                                         for name, device in report.DEVICES.items()) + ")")
    parser.add_argument("-o", "--out-dir", default=None,
                        help="default build/report (ECP5), build/report-DEVICE (others)")


def run(args):
    if args.device not in report.DEVICES:
        raise UserError(f"--device must be one of {', '.join(report.DEVICES)}, "
                        f"got {args.device!r}")
    device = report.DEVICES[args.device]
    frequency = device.frequency if args.frequency is None else args.frequency
    if not frequency > 0:
        raise UserError(f"--frequency must be positive, got {frequency:g}")
    network, images, _ = load_matching(args.weights, "mnist", "test")
    chosen = (args.lanes, args.pixels_per_beat, args.events_per_cycle, args.compact_lanes)
    if device.configurations is not None and chosen == (None,) * 4:
        args.lanes, args.pixels_per_beat, args.events_per_cycle, args.compact_lanes = (
            [c[0] for c in device.configurations], [device.configurations[0][1]], [], [])
    for option, default in (("lanes", report.LANES), ("pixels_per_beat", report.PIXELS_PER_BEAT),
                            ("events_per_cycle", report.EVENTS_PER_CYCLE),
                            ("compact_lanes", report.COMPACT_LANES)):
        if getattr(args, option) is None:
            setattr(args, option, list(default))
    # Checked before any tool starts (a worker's error would wait for the others to finish).
    n_hidden = network.layers[0].n_out
    for option in ("lanes", "compact_lanes"):
        for lanes in getattr(args, option):
            if not 1 <= lanes <= n_hidden:
                raise UserError(f"--{option.replace('_', '-')}: each must be between 1 and "
                                f"{n_hidden}, got {lanes}")
    for ppb in args.pixels_per_beat:
        if ppb not in PIXELS_PER_BEAT_CHOICES:
            raise UserError(f"--pixels-per-beat: each must be one of "
                            f"{', '.join(map(str, PIXELS_PER_BEAT_CHOICES))}, got {ppb}")
    for events in args.events_per_cycle:
        if events not in EVENTS_PER_CYCLE_CHOICES:
            raise UserError(f"--events-per-cycle: each must be one of "
                            f"{', '.join(map(str, EVENTS_PER_CYCLE_CHOICES))}, got {events}")
    if args.jobs is not None and args.jobs < 1:
        raise UserError(f"--jobs must be at least 1, got {args.jobs}")
    if args.jobs is not None and args.address:
        raise UserError("--jobs is for a Ray started here; a cluster (--address) runs as "
                        "many configurations as it has CPUs")
    configurations = report.configurations(args.lanes, args.pixels_per_beat,
                                           args.events_per_cycle, args.compact_lanes)
    out_dir = Path(args.out_dir or ("build/report" if args.device == report.DEFAULT_DEVICE
                                    else f"build/report-{args.device}"))
    rows = report.write_report(network, images, out_dir, configurations, jobs=args.jobs,
                               address=args.address, xilinx=not args.no_xilinx,
                               frequency=frequency, weights_name=args.weights,
                               device=args.device)
    print(report.markdown_table(rows))
    print(f"wrote {out_dir / 'report.md'}, {out_dir / 'report.json'}, "
          f"{out_dir / 'cycles_vs_lanes.png'}, {out_dir / 'pareto.png'}")
    return 0
