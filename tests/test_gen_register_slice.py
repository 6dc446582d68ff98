# amaranth: UnusedElaboratable=no
"""RegisterSlice: every beat passes once and in order under random stalls on both sides, one
beat per cycle when nothing stalls, whatever the payload's width (one skid flag per slice)."""

import numpy as np
import pytest

from bs4nn.gen.register_slice import BITS_PER_COPY, RegisterSlice
from bs4nn.sim.amaranth_harness import pauses, simulate, stream_get, stream_put


def pass_beats(width, beats, valid_pattern=None, ready_pattern=None):
    """Send ``beats`` through a slice of ``width`` bits; return what came out and the cycle
    the last beat came out."""
    dut = RegisterSlice(width)
    seen, ticks, done_at = [], [0], []

    async def source(ctx):
        idle = pauses(valid_pattern)
        for beat in beats:
            await stream_put(ctx, dut.i, beat, idle=idle)

    async def sink(ctx):
        stall = pauses(ready_pattern)
        for _ in beats:
            seen.append(int(await stream_get(ctx, dut.o, stall=stall)))
        done_at.append(ticks[0])

    async def count(ctx):
        while True:
            await ctx.tick()
            ticks[0] += 1

    simulate(dut, source, sink, background=[count])
    return seen, done_at[0]


@pytest.mark.parametrize("width", [1, BITS_PER_COPY, 3 * BITS_PER_COPY + 5])
def test_beats_pass_in_order_under_random_stalls(width):
    seed = 20 + width
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    beats = [int(value) for value in rng.integers(0, 1 << width, 200)]
    valid = [bool(flag) for flag in rng.random(37) < 0.4]
    ready = [bool(flag) for flag in rng.random(41) < 0.4]
    assert pass_beats(width, beats, valid, ready)[0] == beats


def test_one_beat_per_cycle_without_stalls():
    beats = list(range(100))
    seen, cycles = pass_beats(40, beats)
    assert seen == beats
    assert cycles <= len(beats) + 4
