"""Testbench parts for the ``bs4nn`` top level: TB, stream drivers and monitors, scoreboard.

One clocked coroutine serves every port: on each rising edge it lets each port look at the
handshake the edge sampled (cocotb reads pre-edge values after ``RisingEdge`` on Verilator and
Icarus alike) and drive what the next edge will see. One ``await`` per cycle keeps the
testbench from being the bottleneck, and the cycle count it keeps is exact.

Cycle numbering follows :func:`bs4nn.sim.cycle_model.predict`: cycle 0 is the edge that accepts
the first beat of the first image after reset.

The runner (``bs4nn.sim.runner``) passes parameters as environment variables:
``BS4NN_NETWORK`` (weights file the design was generated from), ``BS4NN_DESIGN`` (its
``design.json``), ``BS4NN_SEED``, ``BS4NN_N``, ``BS4NN_PREDICTIONS``, ``BS4NN_SUMMARY``.
"""

import itertools
import json
import os
import random
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, Event, RisingEdge, SimTimeoutError, with_timeout

from bs4nn.gen.schedule import Schedule
from bs4nn.model import packing
from bs4nn.model.network import MAX_STEP, NO_SPIKE, Network
from bs4nn.sim import cycle_model
from bs4nn.sim.stimulus import expected_results

__all__ = ["PERIOD_NS", "Environment", "load_environment", "pause_generator", "StreamSource",
           "StreamSink", "Scoreboard", "TB", "record_summary", "check_hidden_spikes",
           "check_timing", "PAUSE_PATTERNS"]

PERIOD_NS = 10
#: Cycles to watch after the last expected result for anything left over.
DRAIN_CYCLES = 64

#: Named idle (source) and backpressure (sink) patterns: True pauses the stream for a cycle.
PAUSE_PATTERNS = ("none", "quarter", "random", "bursts")


def pause_generator(name, rng):
    """An endless iterator of pause flags for pattern ``name`` (None: never pause)."""
    if name == "none":
        return None
    if name == "quarter":
        return itertools.cycle([False, False, False, True])
    if name == "random":
        return (rng.random() < 0.35 for _ in itertools.count())
    if name == "bursts":
        # Long runs of stalls and of flow, to fill and drain any buffering.
        def bursts():
            while True:
                yield from itertools.repeat(False, rng.randrange(1, 40))
                yield from itertools.repeat(True, rng.randrange(1, 40))
        return bursts()
    raise ValueError(f"unknown pause pattern {name!r} (choose from {PAUSE_PATTERNS})")


@dataclass
class Environment:
    """What the runner tells the testbench, read from ``BS4NN_*`` variables."""

    network: Network
    design: dict
    seed: int
    n: int | None
    predictions: Path | None
    summary: Path | None
    progress: Path | None = None

    @property
    def params(self):
        return self.design["params"]

    @property
    def pixels_per_beat(self):
        return int(self.params["pixels_per_beat"])

    @property
    def lanes(self):
        return int(self.params["lanes"])

    @property
    def events_per_cycle(self):
        return int(self.params["events_per_cycle"])

    @property
    def debug_events(self):
        return bool(self.params["debug_events"])

    @property
    def weight_storage(self):
        return self.params["weight_storage"]

    @property
    def schedule(self):
        """The design's :class:`~bs4nn.gen.schedule.Schedule`, as the generator wrote it."""
        return Schedule(**self.design["info"]["schedule"])

    @property
    def beats_per_image(self):
        return self.schedule.beats_per_image


def load_environment():
    n = os.environ.get("BS4NN_N")
    predictions = os.environ.get("BS4NN_PREDICTIONS")
    summary = os.environ.get("BS4NN_SUMMARY")
    progress = os.environ.get("BS4NN_PROGRESS")
    return Environment(
        network=Network.load(os.environ["BS4NN_NETWORK"]),
        design=json.loads(Path(os.environ["BS4NN_DESIGN"]).read_text()),
        seed=int(os.environ.get("BS4NN_SEED", "1")),
        n=int(n) if n else None,
        predictions=Path(predictions) if predictions else None,
        summary=Path(summary) if summary else None,
        progress=Path(progress) if progress else None,
    )


def record_summary(env, line):
    """Append one line to the run's summary (printed by ``bs4nn sim``) and log it."""
    cocotb.log.info(line)
    if env.summary is None:
        return
    summary = json.loads(env.summary.read_text()) if env.summary.is_file() else {"lines": []}
    summary["lines"].append(line)
    env.summary.write_text(json.dumps(summary, indent=1))


class StreamSource:
    """Drives an AXI-Stream source: ``valid`` never waits on ``ready``; the beat holds still
    until it is transferred. ``pause`` (an iterator of flags) inserts idle cycles between
    beats."""

    def __init__(self, valid, ready, data, last=None):
        self.valid, self.ready, self.data, self.last = valid, ready, data, last
        self.queue = deque()
        self.pause = None
        self.current = None
        self.accepted = 0
        self.first_accept_cycle = None
        self._valid = False
        self.valid.value = 0
        # Idle payload is 0, not X/Z (Icarus leaves undriven inputs at Z).
        self.data.value = 0
        if self.last is not None:
            self.last.value = 0

    def send_frame(self, beats, lasts=None):
        """Queue one frame; ``last`` goes on its final beat unless ``lasts`` says otherwise."""
        lasts = lasts if lasts is not None else [k == len(beats) - 1 for k in range(len(beats))]
        for beat, last in zip(beats, lasts, strict=True):
            self.queue.append((beat, last))

    @property
    def idle(self):
        return self.current is None and not self.queue

    def clear(self):
        """Drop everything queued and the beat on the bus (for a reset)."""
        self.queue.clear()
        self.current = None
        self._valid = False
        self.valid.value = 0

    def edge(self, cycle):
        if self.current is not None and self.ready.value:
            self.accepted += 1
            if self.first_accept_cycle is None:
                self.first_accept_cycle = cycle
            self.current = None
        if self.current is None:
            if self.queue and (self.pause is None or not next(self.pause)):
                self.current = self.queue.popleft()
                self.data.value = self.current[0]
                if self.last is not None:
                    self.last.value = int(self.current[1])
                if not self._valid:
                    self._valid = True
                    self.valid.value = 1
            elif self._valid:
                self._valid = False
                self.valid.value = 0


class StreamSink:
    """Receives an AXI-Stream: calls ``on_receive(cycle, word)`` for each transfer.
    ``pause`` (an iterator of flags) deasserts ``ready`` for a cycle (backpressure).

    It also checks the stream rules on the design's side: once ``valid`` is up, it stays up
    and the payload holds still until the transfer (``violations`` counts breaches).
    """

    def __init__(self, valid, ready, data, on_receive, log=None):
        self.valid, self.ready, self.data = valid, ready, data
        self.on_receive = on_receive
        self.log = log
        self.pause = None
        self.received = 0
        self.violations = 0
        self.held = None
        self._ready = True
        self.ready.value = 1

    def forget_held(self):
        """A reset may take back a word offered and not transferred."""
        self.held = None

    def _violation(self, cycle, message):
        self.violations += 1
        if self.log is not None and self.violations <= 10:
            self.log.error(f"cycle {cycle}: stream rule broken: {message}")

    def edge(self, cycle):
        valid = self.valid.value
        if valid:
            word = self.data.value.to_unsigned()
            if self.held is not None and word != self.held:
                self._violation(cycle, f"payload changed from {self.held:#x} to {word:#x} "
                                       "before its transfer")
            if self._ready:
                self.received += 1
                self.held = None
                self.on_receive(cycle, word)
            else:
                self.held = word
        elif self.held is not None:
            self._violation(cycle, "valid dropped before the transfer")
            self.held = None
        ready = self.pause is None or not next(self.pause)
        if ready != self._ready:
            self._ready = ready
            self.ready.value = int(ready)


class Scoreboard:
    """Compares result words with expectations, in order, field by field with ``==``.

    With a ``progress`` path it writes there, at most once a second of wall time, how many
    results it has received (``bs4nn sim`` draws its progress bar from it)."""

    def __init__(self, n_classes, log, max_reports=20, progress=None):
        self.n_classes = n_classes
        self.word_bits = sum(width for _, width in packing.result_fields(n_classes))
        self.log = log
        self.max_reports = max_reports
        self.expected = deque()
        self.results = {}
        self.matched = 0
        self.errors = 0
        self.unexpected = 0
        self.done = Event()
        self.done.set()
        self.progress = progress
        self._progress_written = 0.0

    def expect(self, index, **fields):
        """Expect a result for image ``index`` with these field values (a subset is fine)."""
        self.expected.append((index, fields))
        self.done.clear()

    def forget_pending(self):
        """Drop outstanding expectations (results lost to a reset)."""
        self.expected.clear()
        self.done.set()

    def _report(self, message):
        if self.errors <= self.max_reports:
            self.log.error(message)

    def receive(self, cycle, word):
        got = packing.unpack_result(self.n_classes, word)
        if not self.expected:
            self.unexpected += 1
            self.errors += 1
            self._report(f"cycle {cycle}: unexpected result {got}")
            return
        index, want = self.expected.popleft()
        self.results[index] = (cycle, got)
        wrong = {name: (got[name], value) for name, value in want.items() if got[name] != value}
        padding = int(word) >> self.word_bits
        if padding:
            wrong["padding above the fields"] = (padding, 0)
        if wrong:
            self.errors += 1
            self._report(f"image {index} (cycle {cycle}): " + ", ".join(
                f"{name} RTL {rtl} != model {model}" for name, (rtl, model) in wrong.items()))
        else:
            self.matched += 1
        if not self.expected:
            self.done.set()
        if self.progress is not None and time.monotonic() - self._progress_written >= 1:
            self.progress.write_text(str(len(self.results)))
            self._progress_written = time.monotonic()


class TB:
    """The ``bs4nn`` top level with its clock, reset, pixel source, result sink and (when the
    design has one) the hidden spike event monitor."""

    def __init__(self, dut, env):
        self.dut = dut
        self.env = env
        self.log = dut._log
        self.cycle = 0
        self.in_reset = True
        self.rng = random.Random(env.seed)
        self.scoreboard = Scoreboard(env.network.n_classes, self.log, progress=env.progress)
        self.source = StreamSource(dut.s_axis_tvalid, dut.s_axis_tready, dut.s_axis_tdata,
                                   dut.s_axis_tlast)
        self.sink = StreamSink(dut.m_axis_tvalid, dut.m_axis_tready, dut.m_axis_tdata,
                               self.scoreboard.receive, self.log)
        self.ports = [self.source, self.sink]
        self.sinks = [self.sink]
        self.weights = None
        self.weights_loaded = False
        if env.weight_storage != "rom":
            self.weights = StreamSource(dut.w_axis_tvalid, dut.w_axis_tready, dut.w_axis_tdata,
                                        dut.w_axis_tlast)
            self.ports.append(self.weights)
        self.events = []
        self.event_fields = None
        if env.debug_events:
            hidden = env.network.sizes[1:-1]
            self.event_fields = packing.debug_event_fields(hidden)
            self.event_sink = StreamSink(dut.dbg_axis_tvalid, dut.dbg_axis_tready,
                                         dut.dbg_axis_tdata, self._on_event, self.log)
            self.ports.append(self.event_sink)
            self.sinks.append(self.event_sink)
        dut.rst.value = 1
        # The first rising edge comes half a period in, once every input above is driven:
        # on Icarus an edge at time 0 would clock X/Z inputs into registers that are not
        # reset (the run-time weights of weight_storage="ram").
        cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start(start_high=False))
        cocotb.start_soon(self._clocked())

    def _on_event(self, cycle, word):
        self.events.append((cycle, packing.unpack_fields(self.event_fields, word)))

    async def _clocked(self):
        edge = RisingEdge(self.dut.clk)
        ports = self.ports
        while True:
            await edge
            self.cycle += 1
            if not self.in_reset:
                for port in ports:
                    port.edge(self.cycle)

    def set_idle(self, name):
        self.source.pause = pause_generator(name, self.rng)

    def set_backpressure(self, name):
        self.sink.pause = pause_generator(name, self.rng)

    def set_event_backpressure(self, name):
        if self.env.debug_events:
            self.event_sink.pause = pause_generator(name, self.rng)

    async def reset(self, cycles=4):
        """Synchronous reset: drop the source's beats and any pending expectations.

        Ports do not sample while reset is asserted: nothing transfers during a reset.
        """
        self.source.clear()
        if self.weights is not None:
            self.weights.clear()
        self.in_reset = True
        self.dut.rst.value = 1
        await ClockCycles(self.dut.clk, cycles)
        self.scoreboard.forget_pending()
        for sink in self.sinks:
            sink.forget_held()
        self.dut.rst.value = 0
        self.in_reset = False
        self.source.first_accept_cycle = None
        await RisingEdge(self.dut.clk)
        if self.env.weight_storage == "spram" and not self.weights_loaded:
            # SPRAM has no initial contents: the network goes in before the first image (it
            # stays through later resets). The accelerator is idle again once it is taken.
            env = self.env
            self.load_network(packing.weight_stream_beats(env.network, env.lanes,
                                                          env.events_per_cycle))
            await self.wait_source_idle(self.weights)
            self.weights_loaded = True

    def send_images(self, images, network=None, first_index=0):
        """Queue images (uint8 ``(n, n_inputs)``) and expect the golden results of ``network``
        (default: the one the design was generated from)."""
        expected = expected_results(self.env.network if network is None else network, images)
        for k, (pixels, fields) in enumerate(zip(images, expected, strict=True)):
            self.source.send_frame(packing.pixel_beats(pixels, self.env.pixels_per_beat))
            self.scoreboard.expect(first_index + k, **fields)

    def timeout_cycles(self, n_images):
        """A generous bound on the cycles ``n_images`` may take (for timeouts only)."""
        schedule, network = self.env.schedule, self.env.network
        # Loading, every event of every lane group, the pipeline, a debug event per hidden
        # neuron, and slack for stalls.
        per_image = (schedule.beats_per_image + schedule.load_to_start
                     + (1 + network.n_inputs) * schedule.lane_groups + schedule.event_to_result
                     + sum(network.sizes[1:-1]) + 4 * (MAX_STEP + 1) + 64)
        return n_images * per_image * 4 + 1000

    async def wait_results(self, n_images):
        """Wait until every expected result has arrived, then watch ``DRAIN_CYCLES`` more."""
        cycles = self.timeout_cycles(n_images)
        try:
            await with_timeout(self.scoreboard.done.wait(), cycles * PERIOD_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(
                f"timeout: {len(self.scoreboard.expected)} results still missing after {cycles} "
                f"cycles; {self.source.accepted} pixel beats accepted, "
                f"{len(self.source.queue) + (self.source.current is not None)} not, "
                f"{self.sink.received} results received") from None
        await ClockCycles(self.dut.clk, DRAIN_CYCLES)

    async def wait_source_idle(self, source=None):
        """Wait until ``source`` (default: the pixel source) has had every beat accepted."""
        source = source or self.source
        while not source.idle:
            await RisingEdge(self.dut.clk)

    def load_network(self, words):
        """Queue one weight frame (``packing.weight_stream_beats`` words) on ``w_axis``."""
        self.weights.send_frame(list(words))

    def result_cycles(self, indices):
        """Transfer cycles of the results of ``indices``, counted from the first accepted beat."""
        start = self.source.first_accept_cycle
        return np.array([self.scoreboard.results[k][0] - start for k in indices], dtype=np.int64)

    def assert_nothing_left(self):
        """Every test ends here: nothing queued, nothing pending, nothing unexpected."""
        assert self.source.idle, f"{len(self.source.queue)} beats never accepted"
        assert self.weights is None or self.weights.idle, "weight words never accepted"
        assert not self.scoreboard.expected, (
            f"{len(self.scoreboard.expected)} results never arrived")
        assert self.scoreboard.unexpected == 0, (
            f"{self.scoreboard.unexpected} results nobody expected")
        assert self.scoreboard.errors == 0, f"{self.scoreboard.errors} result mismatches"
        violations = sum(sink.violations for sink in self.sinks)
        assert violations == 0, f"{violations} breaches of the stream rules by the design"


def check_timing(tb, inference_indices, pixels):
    """Compare result transfer cycles with the cycle model (no stalls). Returns
    ``(mismatches, cycles, predicted)``."""
    predicted = np.asarray(cycle_model.predict(tb.env.network, pixels, lanes=tb.env.lanes,
                                               pixels_per_beat=tb.env.pixels_per_beat,
                                               events_per_cycle=tb.env.events_per_cycle,
                                               weight_storage=tb.env.weight_storage),
                           dtype=np.int64)
    cycles = tb.result_cycles(inference_indices)
    wrong = np.nonzero(cycles != predicted)[0]
    for k in wrong[:10]:
        tb.log.error(f"image {inference_indices[k]}: result in cycle {cycles[k]}, "
                     f"cycle model says {predicted[k]}")
    return wrong.size, cycles, predicted


def check_hidden_spikes(tb, inference, indices):
    """Compare the debug stream's hidden spike events with the golden spike times.

    Events carry no image number, and with two images in flight an image's events may come
    after the previous image's result, so the stream is split by content: image ``k`` takes
    events, in order, while each is one of its golden hidden spikes not yet seen. Every golden
    hidden spike before the decision step must then be among them (later ones may be missing:
    the design may stop at the decision). Anything left at the end is spurious. Returns the
    number of problems.
    """
    n_hidden = len(tb.env.network.layers) - 1
    problems = 0

    def problem(message):
        nonlocal problems
        problems += 1
        if problems <= 20:
            tb.log.error(message)

    events = deque(tb.events)
    for position, k in enumerate(indices):
        golden = set()
        for layer in range(n_hidden):
            times = inference.spike_times[layer][position]
            golden.update((layer, int(j), int(times[j])) for j in np.nonzero(times < NO_SPIKE)[0])
        seen = []
        while events:
            fields = events[0][1]
            key = (fields["layer"], fields["neuron"], fields["step"])
            if key not in golden or key in seen:
                break
            seen.append(key)
            events.popleft()
        decision = int(inference.decision_step[position])
        missing = sorted(key for key in golden if key[2] < decision and key not in seen)
        for layer, neuron, step in missing[:5]:
            problem(f"image {k}: missing hidden spike event layer {layer} neuron {neuron} "
                    f"step {step} (decision step {decision})")
        problems += max(0, len(missing) - 5)
        for layer in range(n_hidden):
            steps = [step for event_layer, _, step in seen if event_layer == layer]
            if steps != sorted(steps):
                tb.log.warning(f"image {k}: layer {layer} events are not in time order")
    if events:
        cycle, fields = events[0]
        problem(f"{len(events)} hidden spike events left unexplained, the first in cycle "
                f"{cycle}: {fields}")
    return problems

