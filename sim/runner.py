"""The simulation runner behind ``bs4nn sim``: generate the accelerator, build it, run a testbench.

Each configuration (network, simulator, LANES, PIXELS_PER_BEAT, weight storage, debug events,
waves) gets its own folder ``build/sim/<config>/`` holding the generated ``bs4nn.v``, the
network it was generated from (``network.npz``), ``design.json`` and the simulator's build. A
build is reused while the Verilog and the build options are unchanged (``build.stamp``); a file
lock makes concurrent runs of one configuration (pytest-xdist, two shells) safe. Each test runs
in its own sub-folder, where the cocotb log, ``results.xml``, ``summary.json`` and the waves go.

The testbenches (``rtl_tests/``) read their parameters from ``BS4NN_*`` environment variables,
set here through the runner's ``extra_env``.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..gen.board import generate_board_core
from ..gen.build import LINT_WAIVERS, generate
from ..gen.pixel_input import PIXELS_PER_BEAT_CHOICES
from ..gen.scheduler import EVENTS_PER_CYCLE_CHOICES
from ..model.errors import UserError
from ..model.network import Network
from . import toolchain
from .stimulus import random_network

__all__ = ["TESTS", "SimTest", "SimConfig", "Build", "Outcome", "prepare_build",
           "run_test", "run_random_networks", "failure_excerpt", "REPO", "TESTBENCH_DIR",
           "BUILD_ROOT", "BOARD_CLOCKS_PER_BIT", "BOARD_TIMEOUT_BITS"]

REPO = Path(__file__).resolve().parents[1]
TESTBENCH_DIR = REPO / "rtl_tests"
BUILD_ROOT = Path("build") / "sim"
TOPLEVEL = "bs4nn"
TIMESCALE = ("1ns", "1ps")
#: Verilator options: warnings are printed but do not stop a build (Amaranth's Verilog is
#: lint-clean by default; a stray width warning should not hide a simulation result).
VERILATOR_ARGS = ("-Wno-fatal", "--x-assign", "fast", "--x-initial", "fast")
ICARUS_ARGS = ()
#: Default network for the tests that do not need the MNIST-sized one.
SMALL_SIZES = (48, 24, 16, 10)


@dataclass(frozen=True)
class SimTest:
    """A testbench: the cocotb module and test name, and what the design must offer."""

    module: str
    testcase: str
    description: str
    debug_events: bool = False
    weight_storage: str | None = None
    needs_mnist: bool = False
    #: The design is the board core (``bs4nn.gen.board``: UART pins, link protocol).
    board: bool = False


TESTS = {
    "mnist_inference": SimTest("test_accelerator", "mnist_inference",
                               "N MNIST test images (or of the dataset the weights were trained "
                               "on) back to back vs the golden and cycle models",
                               needs_mnist=True),
    "random_images": SimTest("test_accelerator", "random_images",
                             "random images under random valid/ready stalls on both streams"),
    "malformed_frames": SimTest("test_accelerator", "malformed_frames",
                                "frames with an early or late last give error=1, then resync"),
    "reset_mid_frame": SimTest("test_accelerator", "reset_mid_frame",
                               "reset in the middle of a frame, then correct results"),
    "hidden_spikes": SimTest("test_accelerator", "hidden_spikes",
                             "hidden spike events (debug stream) vs the golden spike times",
                             debug_events=True),
    "weight_reload": SimTest("test_accelerator", "weight_reload",
                             "load networks through the weight stream (shuffled, while busy, "
                             "a subset) and infer with each",
                             weight_storage="ram"),
    "random_networks": SimTest("test_accelerator", "random_images",
                               "random small networks (1-3 hidden layers) and parameters, "
                               "each built and run on random images"),
    "board_link": SimTest("test_board", "board_link",
                          "the board core: N MNIST images bit by bit through the UART pins, "
                          "with corrupted and truncated frames, replies vs the golden model",
                          needs_mnist=True, board=True),
    "board_host": SimTest("test_board", "board_host",
                          "bs4nn board run over a pseudo-terminal wired to the board core's "
                          "UART pins (N images)", needs_mnist=True, board=True),
    "board_weights": SimTest("test_board", "board_weights",
                             "the board core with run-time weights: a corrupted, then a good "
                             "weight frame through the UART pins, then N random images vs the "
                             "golden model of the uploaded network",
                             weight_storage="ram", board=True),
}

#: The board core in simulation: UART clocks per bit, and the frame timeout in bit times.
BOARD_CLOCKS_PER_BIT = 4
BOARD_TIMEOUT_BITS = 40


@dataclass(frozen=True)
class SimConfig:
    """Generator and simulator parameters of one build."""

    simulator: str = "verilator"
    lanes: int = 0
    pixels_per_beat: int = 8
    events_per_cycle: int = 1
    weight_storage: str = "rom"
    debug_events: bool = False
    waves: bool = False
    #: Compile the Verilated model without C++ optimisation: builds take about half as long
    #: and simulate about half as fast (the pytest wrappers' small runs).
    quick_build: bool = False
    #: Non-zero: build the board core (``bs4nn_board``) with this many clocks per UART bit.
    board_clocks_per_bit: int = 0

    @property
    def toplevel(self):
        return "bs4nn_board" if self.board_clocks_per_bit else TOPLEVEL

    @property
    def tag(self):
        parts = [self.simulator, f"l{self.lanes}", f"p{self.pixels_per_beat}",
                 f"e{self.events_per_cycle}"]
        parts += [self.weight_storage] if self.weight_storage != "rom" else []
        parts += ["dbg"] if self.debug_events else []
        parts += ["waves"] if self.waves else []
        parts += ["quick"] if self.quick_build and self.simulator == "verilator" else []
        parts += [f"uart{self.board_clocks_per_bit}"] if self.board_clocks_per_bit else []
        return "-".join(parts)


@dataclass(frozen=True)
class Build:
    """A prepared build: its folder and what the testbench needs to know."""

    directory: Path
    config: SimConfig
    network_path: Path
    network: Network


@dataclass(frozen=True)
class Outcome:
    """Result of one testbench run: counts from ``results.xml`` and the test's summary."""

    name: str
    tests: int
    failed: int
    directory: Path
    summary: dict
    waves: Path | None = None

    @property
    def passed(self):
        return self.tests > 0 and self.failed == 0


def _network_name(network, weights):
    digest = hashlib.sha256()
    for layer in network.layers:
        digest.update(layer.signs.tobytes())
        digest.update(layer.thresholds.tobytes())
    stem = Path(weights).stem if weights else "random-" + network.describe()
    return f"{stem}-{digest.hexdigest()[:8]}"


#: Yosys's Verilog backend declares ``reg \$auto$verilog_backend.cc:N:dump_module$K = 0;`` and
#: lists it in every ``always @*`` block, expecting the initialisation to wake those blocks at
#: time 0. Icarus 11 gives a declaration's initial value before any process waits, so a block
#: whose inputs never change (the next value of a reset-less register that is never written,
#: as the run-time weights of ``weight_storage="ram"`` are) never runs, and the register takes
#: X on the first clock edge. Setting the trigger once at 1 ns wakes every such block.
_YOSYS_TRIGGER = re.compile(
    r"^(?P<indent>\s*)reg (?P<name>\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+ ) = 0;$",
    re.MULTILINE)


def icarus_compatible(verilog):
    """The generated Verilog with the always-@* triggers set once at 1 ns (for Icarus)."""
    return _YOSYS_TRIGGER.sub(
        lambda m: f"{m[0]}\n{m['indent']}initial #1 {m['name']}= 1'b1;", verilog)


def _write_if_changed(path, text):
    if not path.is_file() or path.read_text() != text:
        path.write_text(text)


@contextlib.contextmanager
def _locked(directory):
    """Hold an exclusive lock on a build folder; yields a function that makes it shared."""
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield lambda: fcntl.flock(lock, fcntl.LOCK_SH)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _generate(network, config):
    try:
        if config.board_clocks_per_bit:
            return generate_board_core(
                network, clocks_per_bit=config.board_clocks_per_bit,
                timeout_cycles=BOARD_TIMEOUT_BITS * config.board_clocks_per_bit,
                lanes=config.lanes, pixels_per_beat=config.pixels_per_beat,
                events_per_cycle=config.events_per_cycle, weight_storage=config.weight_storage)
        return generate(network, lanes=config.lanes, pixels_per_beat=config.pixels_per_beat,
                        events_per_cycle=config.events_per_cycle,
                        weight_storage=config.weight_storage, debug_events=config.debug_events)
    except UserError:
        raise
    except (TypeError, ValueError) as error:
        raise UserError(f"cannot generate this configuration: {error}") from None


def _build_simulator(directory, config, verilog_path, log):
    from cocotb_tools.runner import get_runner

    runner = get_runner(config.simulator)
    args = VERILATOR_ARGS if config.simulator == "verilator" else ICARUS_ARGS
    sources = ([LINT_WAIVERS] if config.simulator == "verilator" else []) + [verilog_path]
    if config.weight_storage == "spram":
        # The SB_SPRAM256KA instances run on Yosys's own simulation model of the primitive.
        sources.append(toolchain.ice40_primitive_model("SB_SPRAM256KA", directory))
    stamp_path = directory / "build.stamp"
    stamp = hashlib.sha256(json.dumps({
        "sources": [hashlib.sha256(path.read_bytes()).hexdigest() for path in sources],
        "config": asdict(config), "args": args, "timescale": TIMESCALE,
    }, sort_keys=True).encode()).hexdigest()
    executable = directory / ("sim.vvp" if config.simulator == "icarus" else config.toplevel)
    if executable.is_file() and stamp_path.is_file() and stamp_path.read_text() == stamp:
        return False
    stamp_path.unlink(missing_ok=True)
    log(f"building {directory.name} with {config.simulator}")
    started = time.monotonic()
    with _redirected(directory / "build.log"), _make_flags(QUICK_MAKE_FLAGS
                                                            if config.quick_build else ()):
        try:
            runner.build(sources=sources, hdl_toplevel=config.toplevel, build_dir=directory,
                         build_args=list(args), timescale=TIMESCALE, waves=config.waves,
                         always=True)
        except (SystemExit, Exception) as error:
            raise UserError(f"{config.simulator} build failed ({error}); "
                            f"see {directory / 'build.log'}") from None
    # Verilator's precompiled headers are most of a build's 150+ MB and serve only an
    # incremental rebuild, which never happens here (a changed stamp means new Verilog).
    for header in directory.glob("*.gch"):
        header.unlink()
    stamp_path.write_text(stamp)
    log(f"built {directory.name} in {time.monotonic() - started:.1f} s")
    return True


#: Make variables of a quick build (see :attr:`SimConfig.quick_build`).
QUICK_MAKE_FLAGS = ("OPT_FAST=-O0", "OPT_GLOBAL=-O0")


@contextlib.contextmanager
def _make_flags(flags):
    """Add variable definitions to MAKEFLAGS (which make treats as command-line ones)."""
    saved = os.environ.get("MAKEFLAGS")
    if flags:
        os.environ["MAKEFLAGS"] = " ".join([saved or "", *flags]).strip()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved


@contextlib.contextmanager
def _progress_bar(path, total, label):
    """A progress bar on this process's stderr (as it is now, before any redirection) of the
    results count the testbench writes to ``path``, polled each second."""
    from tqdm import tqdm

    stop = threading.Event()
    with os.fdopen(os.dup(2), "w") as stream, tqdm(total=total, desc=label, unit="result",
                                                    file=stream, mininterval=1,
                                                    leave=False) as bar:
        def poll():
            while not stop.wait(1):
                try:
                    count = int(path.read_text())
                except (FileNotFoundError, ValueError):   # not written yet, or mid-write
                    continue
                bar.update(count - bar.n)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()


@contextlib.contextmanager
def _redirected(path):
    """Send this process's stdout and stderr (and its children's) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(path, "w") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _generation_key(network, config):
    """What the generated Verilog depends on: the network, the generator parameters and the
    source of the generator (``gen/``, the packing module) and of Amaranth."""
    import amaranth

    from .. import gen
    from ..model import packing, protocol

    digest = hashlib.sha256()
    for layer in network.layers:
        digest.update(np.ascontiguousarray(layer.signs).tobytes())
        digest.update(np.ascontiguousarray(layer.thresholds).tobytes())
    digest.update(json.dumps([network.sizes, config.lanes, config.pixels_per_beat,
                              config.events_per_cycle, config.weight_storage, config.debug_events,
                              config.board_clocks_per_bit,
                              config.simulator == "icarus", amaranth.__version__]).encode())
    for source in sorted(Path(gen.__file__).resolve().parent.glob("*.py")) + [
            Path(packing.__file__).resolve(), Path(protocol.__file__).resolve(),
            Path(__file__).resolve()]:
        digest.update(source.read_bytes())
    return digest.hexdigest()


def prepare_build(network, config, *, weights=None, build_root=BUILD_ROOT, log=print):
    """Generate ``network`` into its configuration folder and build it; both steps are skipped
    while their inputs are unchanged. Returns a :class:`Build`.

    The caller must hold no lock; this takes and releases one.
    """
    toolchain.prepare(config.simulator)
    directory = Path(build_root).resolve() / f"{_network_name(network, weights)}-{config.tag}"
    with _locked(directory):
        network_path = directory / "network.npz"
        if not network_path.is_file():
            network.save(network_path)
        verilog_path = directory / f"{config.toplevel}.v"
        design_path = directory / "design.json"
        key_path = directory / "generation.stamp"
        key = _generation_key(network, config)
        if not (verilog_path.is_file() and design_path.is_file() and key_path.is_file()
                and key_path.read_text() == key):
            key_path.unlink(missing_ok=True)
            design = _generate(network, config)
            verilog = design.verilog
            if config.simulator == "icarus":
                verilog = icarus_compatible(verilog)
            _write_if_changed(verilog_path, verilog)
            info = {"params": asdict(config), "sizes": network.sizes,
                    "info": _jsonable(design.info)}
            _write_if_changed(design_path, json.dumps(info, indent=1, sort_keys=True))
            key_path.write_text(key)
        _build_simulator(directory, config, verilog_path, log)
    return Build(directory, config, network_path, network)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return repr(value)


def run_test(build, name, *, seed, n=None, predictions=None, extra=None, label=None,
             quiet=False, progress=False):
    """Run the testbench ``name`` (a key of :data:`TESTS`) on a prepared build.

    ``extra`` adds ``BS4NN_*`` variables. The simulator's output goes to ``sim.log`` in the
    test's folder when ``quiet``; ``progress`` draws a bar of the results received (out of
    ``n``) on stderr meanwhile. Returns an :class:`Outcome`.
    """
    from cocotb_tools.check_results import get_results
    from cocotb_tools.runner import get_runner

    test = TESTS[name]
    toolchain.prepare(build.config.simulator)
    if str(TESTBENCH_DIR) not in sys.path:
        # cocotb imports the test module through PYTHONPATH, which the runner takes from sys.path.
        sys.path.insert(0, str(TESTBENCH_DIR))
    label = label or name
    with _locked(build.directory) as share:
        share()
        test_dir = build.directory / label
        test_dir.mkdir(exist_ok=True)
        for stale in ("summary.json", "results.xml", "progress"):
            (test_dir / stale).unlink(missing_ok=True)
        env = {
            "BS4NN_NETWORK": str(build.network_path),
            "BS4NN_DESIGN": str(build.directory / "design.json"),
            "BS4NN_SEED": str(seed),
            "BS4NN_TEST_NAME": name,
            "BS4NN_SUMMARY": str(test_dir / "summary.json"),
            "BS4NN_PROGRESS": str(test_dir / "progress"),
            "PYTHONWARNINGS": "ignore::DeprecationWarning",
        }
        if n is not None:
            env["BS4NN_N"] = str(n)
        if predictions is not None:
            env["BS4NN_PREDICTIONS"] = str(Path(predictions).resolve())
        env.update(extra or {})
        runner = get_runner(build.config.simulator)
        plusargs = []
        if build.config.waves and build.config.simulator == "icarus":
            plusargs.append(f"+dumpfile_path={test_dir / 'bs4nn.fst'}")
        results = test_dir / "results.xml"
        with contextlib.ExitStack() as stack:
            if progress:
                stack.enter_context(_progress_bar(test_dir / "progress", n, label))
            if quiet:
                stack.enter_context(_redirected(test_dir / "sim.log"))
            with contextlib.suppress(SystemExit):
                runner.test(test_module=test.module,
                            test_filter=rf"^{test.module}\.{test.testcase}(/|$)",
                            hdl_toplevel=build.config.toplevel, hdl_toplevel_lang="verilog",
                            build_dir=build.directory, test_dir=test_dir,
                            results_xml=str(results), extra_env=env, seed=seed,
                            plusargs=plusargs, waves=build.config.waves,
                            timescale=TIMESCALE if build.config.simulator == "icarus" else None)
        try:
            tests, failed = get_results(results)
        except RuntimeError:
            tests, failed = 0, 1
        summary_path = test_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
        waves = next((p for p in (test_dir / "dump.vcd", test_dir / "bs4nn.fst") if p.is_file()),
                     None) if build.config.waves else None
        return Outcome(label, tests, failed, test_dir, summary, waves)


# --- random_networks: a sweep over small random networks and generator parameters -------------

#: LANES values drawn by the sweep (0: the generator's default).
SWEEP_LANES = (0, 1, 2, 3, 4, 8)


def draw_sweep_case(rng):
    """Sizes and generator parameters of one random-network case."""
    n_hidden = int(rng.integers(1, 3, endpoint=True))
    sizes = [int(rng.integers(8, 48, endpoint=True))]
    sizes += [int(rng.integers(4, 32, endpoint=True)) for _ in range(n_hidden)]
    sizes += [int(rng.integers(2, 10, endpoint=True))]
    lanes = min(int(rng.choice(SWEEP_LANES)), sizes[1])
    pixels_per_beat = int(rng.choice(PIXELS_PER_BEAT_CHOICES))
    events_per_cycle = int(rng.choice([e for e in EVENTS_PER_CYCLE_CHOICES
                                       if e <= pixels_per_beat]))
    return sizes, lanes, pixels_per_beat, events_per_cycle


def run_random_networks(count, seed, *, simulator, n, build_root=BUILD_ROOT, log=print,
                        quiet=True):
    """Build and run ``count`` random networks; returns a list of :class:`Outcome`."""
    rng = np.random.default_rng(seed)
    outcomes = []
    for case in range(count):
        sizes, lanes, pixels_per_beat, events_per_cycle = draw_sweep_case(rng)
        network = random_network(rng, sizes)
        # Small designs, short runs: the build dominates, so skip C++ optimisation.
        config = SimConfig(simulator=simulator, lanes=lanes, pixels_per_beat=pixels_per_beat,
                           events_per_cycle=events_per_cycle, quick_build=True)
        log(f"random_networks: case {case}: {network.describe()}, lanes {lanes}, "
            f"pixels/beat {pixels_per_beat}, events/cycle {events_per_cycle}")
        build = prepare_build(network, config, build_root=build_root, log=log)
        case_seed = int(rng.integers(1 << 31))
        outcomes.append(run_test(build, "random_networks", seed=case_seed, n=n, quiet=quiet,
                                 label="random_images"))
    return outcomes


def failure_excerpt(log_path, limit=12):
    """The first error messages and the failed tests of a simulator log (quiet runs)."""
    if not log_path.is_file():
        return f"(no log at {log_path})"
    lines = [line.rstrip() for line in log_path.read_text(errors="replace").splitlines()]
    errors = [line for line in lines if " ERROR " in line or "Error:" in line]
    failed = [line for line in lines if line.lstrip().startswith("**") and " FAIL " in line]
    return "\n".join(errors[:limit] + failed + [f"(full log: {log_path})"])
