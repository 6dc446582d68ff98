"""amaranth.sim harness shared by the tests: stream helpers and the cycle-exact run of the
:class:`~bs4nn.gen.top.Accelerator`.

The stream helpers (:func:`stream_put`, :func:`stream_get`, :func:`stream_assert_idle`) follow
Glasgow's ``stream_put``/``stream_get``/``stream_assert`` on Amaranth 0.5's async testbench
API, and keep the stream rules on the testbench's side: ``valid`` never waits on ``ready``, and
the payload holds still until it is transferred. They wait with plain
``await ctx.tick().sample(...)`` loops rather than ``.until()``: a background testbench is
dropped mid-wait when the simulation ends, and a dropped ``.until()`` raises as it is closed.

:func:`run_accelerator` follows the contract of ``bs4nn.sim.cycle_model``: each beat is presented
as soon as the previous one is accepted (unless an idle pattern withholds ``valid``), and the
cycle of a transfer is counted from the cycle whose rising edge accepts the first beat (cycle 0).
"""

import itertools

from amaranth.hdl import Const, Module, Signal
from amaranth.sim import Simulator

from ..model import packing

__all__ = ["simulate", "stream_put", "stream_get", "stream_assert_idle", "pauses", "frames_of",
           "run_accelerator"]

#: Cycles :func:`run_accelerator` watches after the last result (as the cocotb testbench does).
DRAIN_CYCLES = 64


def simulate(dut, *testbenches, background=(), clock=True, vcd=None):
    """Run ``testbenches`` (async functions of the simulator context) on ``dut`` until each has
    returned; the ``background`` ones run alongside and are dropped then. ``clock``: give the
    ``sync`` domain a 100 MHz clock (False for a combinational design). ``vcd``: a trace file.
    """
    simulator = Simulator(dut)
    if clock:
        simulator.add_clock(1e-8)
    for testbench in testbenches:
        simulator.add_testbench(testbench)
    for testbench in background:
        simulator.add_testbench(testbench, background=True)
    if vcd:
        with simulator.write_vcd(vcd):
            simulator.run()
    else:
        simulator.run()


def pauses(pattern):
    """An endless iterator of pause flags from ``pattern`` (booleans, cycled; True pauses the
    stream for a cycle), or None for no pauses."""
    return itertools.cycle(pattern) if pattern else None


async def stream_put(ctx, stream, payload, *, idle=None):
    """Offer ``payload`` (a value of the stream's payload shape, or its bits as an int) on
    ``stream`` and hold it until it is transferred.

    ``idle`` (an iterator of flags, see :func:`pauses`) inserts cycles with ``valid`` low before
    the offer, one per True it gives; the offer itself is never withdrawn.
    """
    while idle is not None and next(idle):
        await ctx.tick()
    ctx.set(stream.valid, 1)
    target = stream.payload
    if isinstance(payload, int) and hasattr(target, "as_value"):
        target = target.as_value()  # a layout payload given as its bits
    ctx.set(target, payload)
    ready = False
    while not ready:
        _, _, ready = await ctx.tick().sample(stream.ready)
    ctx.set(stream.valid, 0)


async def stream_get(ctx, stream, *, stall=None):
    """Take one payload from ``stream``; returns it.

    ``stall`` (an iterator of flags, see :func:`pauses`) holds ``ready`` low for a cycle on each
    True, drawn every cycle until the transfer. An always-ready stream is only watched.
    """
    always_ready = isinstance(stream.ready, Const)
    while True:
        ready = always_ready or stall is None or not next(stall)
        if not always_ready:
            ctx.set(stream.ready, ready)
        _, _, valid, payload = await ctx.tick().sample(stream.valid, stream.payload)
        if valid and ready:
            if not always_ready:
                ctx.set(stream.ready, 0)
            return payload


async def stream_assert_idle(ctx, stream, cycles):
    """Assert that ``stream`` offers nothing (``valid`` low) for ``cycles`` cycles."""
    for cycle in range(cycles):
        _, _, valid = await ctx.tick().sample(stream.valid)
        assert not valid, f"valid rose {cycle} cycles into {cycles} that should be idle"


def _pauses_of(enables):
    """Pause flags from an enable pattern (True: ``valid`` or ``ready`` up), or None."""
    return pauses([not flag for flag in enables or ()])


def frames_of(images, pixels_per_beat):
    """Well-formed frames: one list of beat words per image (``packing.pixel_beats``)."""
    return [packing.pixel_beats(image, pixels_per_beat) for image in images]


def _framed(words, width):
    """Payload values of one frame: each word with ``last`` (bit ``width``) on the final one."""
    return [int(word) | (int(index == len(words) - 1) << width)
            for index, word in enumerate(words)]


def run_accelerator(accelerator, frames, *, valid_pattern=None, ready_pattern=None,
                    weight_frames=(), debug_ready_pattern=None, max_cycles=100_000, vcd=None,
                    trace=None):
    """Send ``frames`` (lists of beat words; ``last`` on each list's final beat) and collect
    ``len(frames)`` results.

    ``valid_pattern`` / ``ready_pattern`` are iterables of booleans, cycled, that gate the
    input ``valid`` (between beats) and the output ``ready`` (default: always 1).
    ``weight_frames`` lists ``(frame_index, words)``: that weight frame is offered on
    ``i_weights`` from the cycle pixel frame ``frame_index`` is first offered, concurrently with
    the pixel stream.

    Returns ``(results, cycles)``: the result fields (dicts) and the transfer cycle of each.
    After the last result it watches ``DRAIN_CYCLES`` more: no further result may be offered
    (AssertionError), and the debug stream delivers the last image's events.
    With ``debug_events``, the debug stream is taken under ``debug_ready_pattern`` and its
    events (dicts of ``packing.debug_event_fields``) go to ``trace["debug"]``.
    With ``trace`` (a dict), also records ``trace["frame_start"]`` (the cycle each frame's
    first beat was accepted) and ``trace["weights"]`` (per weight frame, the cycles of its first
    and last word).
    """
    i_pixels, o_results = accelerator.i_pixels, accelerator.o_results
    trace = {} if trace is None else trace
    trace.update(frame_start=[None] * len(frames), weights=[], debug=[])
    results, result_cycles = [], []

    # Free-running counters beside the design, so that every testbench reads the same cycle
    # number and the same count of pixel frames whatever order the simulator runs them in.
    m = Module()
    m.submodules.accelerator = accelerator
    cycle = Signal(32)
    frames_done = Signal(range(len(frames) + 1))
    frame_ends = i_pixels.valid & i_pixels.ready & i_pixels.payload.last
    m.d.sync += cycle.eq(cycle + 1)
    with m.If(frame_ends):
        m.d.sync += frames_done.eq(frames_done + 1)

    def transfer_cycle(ctx):
        """The cycle of the transfer just made (the edge just awaited)."""
        return ctx.get(cycle) - 1

    async def pixels(ctx):
        idle = _pauses_of(valid_pattern)
        for index, frame in enumerate(frames):
            for payload in _framed(frame, 8 * accelerator.pixels_per_beat):
                await stream_put(ctx, i_pixels, payload, idle=idle)
                if trace["frame_start"][index] is None:
                    trace["frame_start"][index] = transfer_cycle(ctx)

    async def results_sink(ctx):
        stall = _pauses_of(ready_pattern)
        for _ in frames:
            payload = await stream_get(ctx, o_results, stall=stall)
            results.append(packing.unpack_result(accelerator.network.n_classes,
                                                 payload.as_bits()))
            result_cycles.append(transfer_cycle(ctx))
        # Nothing more may come; the debug stream meanwhile delivers the last image's events.
        await stream_assert_idle(ctx, o_results, DRAIN_CYCLES)

    async def weights(ctx):
        width = sum(width for _, width in accelerator.weight_fields)
        for frame_index, words in weight_frames:
            # Frame ``frame_index`` is first offered in the cycle after the previous one ends.
            done = ctx.get(frames_done)
            while done < frame_index:
                _, _, done = await ctx.tick().sample(frames_done + frame_ends)
            cycles = []
            for payload in _framed(list(words), width):
                await stream_put(ctx, accelerator.i_weights, payload)
                cycles.append(transfer_cycle(ctx))
            trace["weights"].append((cycles[0], cycles[-1]))

    async def debug(ctx):
        fields = packing.debug_event_fields(accelerator.hidden_sizes)
        stall = _pauses_of(debug_ready_pattern)
        while True:
            payload = await stream_get(ctx, accelerator.o_debug, stall=stall)
            trace["debug"].append(packing.unpack_fields(fields, payload.as_bits()))

    async def watchdog(ctx):
        for _ in range(max_cycles):
            await ctx.tick()
        raise TimeoutError(f"{len(results)} of {len(frames)} results after {max_cycles} cycles")

    benches = [pixels, results_sink] + ([weights] if weight_frames else [])
    simulate(m, *benches, background=[watchdog] + ([debug] if accelerator.debug_events else []),
             vcd=vcd)
    first_accept = trace["frame_start"][0]
    return results, [result_cycle - first_accept for result_cycle in result_cycles]
