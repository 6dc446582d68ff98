"""``bs4nn sim``: generate the accelerator, build it with a simulator and run a testbench."""

import argparse
import secrets
import time

import numpy as np

from bs4nn.gen.top import WEIGHT_STORAGE_CHOICES
from bs4nn.model import data
from bs4nn.model.errors import UserError
from bs4nn.model.evaluation import PREDICTIONS_HEADER
from bs4nn.model.network import DEFAULT_WEIGHTS, Network
from bs4nn.sim import runner, toolchain

from .options import add_events_per_cycle_argument


def add_arguments(parser):
    listing = "; ".join(f"{name}: {test.description}" for name, test in runner.TESTS.items())
    parser.add_argument("test", metavar="TEST", help=f"the testbench to run ({listing})")
    parser.add_argument("--n", type=int, default=None,
                        help="images (mnist_inference: 200; others: their own default); "
                             "random_networks: images per network")
    parser.add_argument("--seed", type=int, default=None,
                        help="random seed (images, stalls, networks); printed when drawn")
    parser.add_argument("--waves", action="store_true", help="record waves (VCD/FST)")
    parser.add_argument("--simulator", default="verilator", choices=toolchain.SIMULATORS)
    parser.add_argument("--weights", default=None,
                        help="weights file (.npz), or 'random' for a small random network "
                             f"({'-'.join(map(str, runner.SMALL_SIZES))}); default: the "
                             f"shipped {DEFAULT_WEIGHTS.name} for mnist_inference, 'random' "
                             "otherwise")
    parser.add_argument("--lanes", type=int, default=0,
                        help="counters of the first hidden layer (0: one per neuron)")
    parser.add_argument("--pixels-per-beat", type=int, default=8)
    add_events_per_cycle_argument(parser)
    parser.add_argument("--weight-storage", default=None, choices=WEIGHT_STORAGE_CHOICES,
                        help="rom (default), ram (writable, initialised) or spram (iCE40 "
                             "SB_SPRAM256KA, loaded through w_axis before the first image); "
                             "weight_reload takes ram unless told")
    parser.add_argument("--predictions", default=None,
                        help=f"mnist_inference: write {PREDICTIONS_HEADER}")
    parser.add_argument("--networks", type=int, default=4,
                        help="random_networks: how many networks to draw")
    parser.add_argument("--quick-build", action="store_true",
                        help="Verilator: compile the model without C++ optimisation (about half "
                             "the build time, about half the simulation speed)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show the simulator's output (otherwise it goes to sim.log)")
    parser.add_argument("--build-dir", default=str(runner.BUILD_ROOT), help=argparse.SUPPRESS)


def _load_network(args, test, rng):
    """The network under test and its weights file (``None`` for a random one)."""
    weights = args.weights
    if weights is None:
        weights = DEFAULT_WEIGHTS if test.needs_mnist else "random"
    if weights == "random":
        if test.needs_mnist:
            raise UserError(f"{args.test} needs a 784-input weights file, not 'random'")
        return runner.random_network(rng, runner.SMALL_SIZES), None
    network = Network.load(weights)
    if test.needs_mnist:
        if network.n_inputs != 784:
            raise UserError(f"{weights}: {args.test} needs 784 inputs, the network has "
                            f"{network.n_inputs}")
        # The testbench streams the test images of the dataset the network was trained on.
        dataset = network.metadata.get("dataset", "mnist")
        if args.n is not None and args.n > data.N_TEST:
            raise UserError(f"--n {args.n}: the {dataset} test set has {data.N_TEST} images")
    return network, weights


def _describe(name, outcome):
    lines = outcome.summary.get("lines")
    if lines:
        return "\n".join(lines)
    return f"{name}: {outcome.tests - outcome.failed}/{outcome.tests} cocotb tests passed"


def _check_options(args):
    if args.test not in runner.TESTS:
        raise UserError(f"unknown test {args.test!r} (choose from {', '.join(runner.TESTS)})")
    for option, least in {"n": 1, "networks": 1, "lanes": 0, "pixels_per_beat": 1}.items():
        value = getattr(args, option)
        if value is not None and value < least:
            raise UserError(f"--{option.replace('_', '-')} must be at least {least}, got {value}")
    if args.predictions is not None and args.test != "mnist_inference":
        raise UserError("--predictions applies to mnist_inference only")
    if args.waves and args.test == "random_networks":
        raise UserError("--waves is not offered for random_networks (run a single case)")
    test = runner.TESTS[args.test]
    if args.weight_storage == "rom" and test.weight_storage:
        raise UserError(f"{args.test} needs run-time weights (--weight-storage ram or spram)")
    if args.weight_storage is not None and (test.board or args.test == "random_networks"):
        raise UserError(f"--weight-storage does not apply to {args.test}")


def _run_random_networks(args, seed):
    outcomes = runner.run_random_networks(args.networks, seed, simulator=args.simulator,
                                          n=args.n, build_root=args.build_dir)
    failed = [o for o in outcomes if not o.passed]
    for outcome in outcomes:
        print(f"{outcome.directory.parent.name}:")
        for line in _describe("random_images", outcome).splitlines():
            print(f"  {line}")
    print(f"random_networks: {len(outcomes) - len(failed)}/{len(outcomes)} networks passed")
    for outcome in failed:
        print(runner.failure_excerpt(outcome.directory / "sim.log"))
    return 1 if failed else 0


def run(args):
    _check_options(args)
    test = runner.TESTS[args.test]
    seed = args.seed if args.seed is not None else secrets.randbelow(1 << 31)
    network = weights = None
    if args.test != "random_networks":
        network, weights = _load_network(args, test, np.random.default_rng(seed))
    print(f"bs4nn sim {args.test}: seed {seed} (rerun with --seed {seed})", flush=True)
    if args.test == "random_networks":
        return _run_random_networks(args, seed)

    config = runner.SimConfig(simulator=args.simulator, lanes=args.lanes,
                              pixels_per_beat=args.pixels_per_beat,
                              events_per_cycle=args.events_per_cycle,
                              weight_storage=args.weight_storage or test.weight_storage
                              or "rom",
                              debug_events=test.debug_events, waves=args.waves,
                              quick_build=args.quick_build,
                              board_clocks_per_bit=runner.BOARD_CLOCKS_PER_BIT if test.board
                              else 0)
    build = runner.prepare_build(network, config, weights=weights, build_root=args.build_dir)
    started = time.monotonic()
    outcome = runner.run_test(build, args.test, seed=seed, n=args.n,
                              predictions=args.predictions, quiet=not args.verbose,
                              progress=not args.verbose)
    elapsed = time.monotonic() - started
    print(_describe(args.test, outcome))
    if not outcome.passed and not args.verbose:
        print(runner.failure_excerpt(outcome.directory / "sim.log"))
    print(f"bs4nn sim {args.test}: {'PASS' if outcome.passed else 'FAIL'} in {elapsed:.1f} s "
          f"({outcome.directory})")
    if outcome.waves is not None:
        print(f"waves: {outcome.waves}")
    if args.predictions is not None and outcome.passed:
        print(f"predictions: {args.predictions}")
    return 0 if outcome.passed else 1
