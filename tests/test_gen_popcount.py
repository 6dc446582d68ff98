# amaranth: UnusedElaboratable=no
"""RowPopcount and the combinational trees (first_set, argmax, the decision's winner) against
numpy."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal, signed

from bs4nn.gen.first_set import decode, encode, first_set, lowest_one_hot
from bs4nn.gen.output_layer import argmax, compare_all, winner
from bs4nn.gen.popcount import RowPopcount, popcount_latency
from bs4nn.sim.amaranth_harness import simulate


@pytest.mark.parametrize(("n_inputs", "n_rows", "runtime"), [
    (1, 1, False), (7, 3, False), (37, 5, True), (64, 2, False), (600, 2, False)])
def test_row_popcount(n_inputs, n_rows, runtime):
    seed = n_inputs * 10 + n_rows
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    rows = rng.random((n_rows, n_inputs)) < 0.5
    dut = RowPopcount(n_inputs, n_rows if runtime else rows)
    assert dut.latency == popcount_latency(n_inputs)
    vectors = rng.random((12, n_inputs)) < rng.uniform(0.1, 0.9)
    got = []

    async def bench(ctx):
        if runtime:
            for j in range(n_rows):
                ctx.set(dut.rows[j], int("".join("1" if b else "0" for b in rows[j][::-1]), 2))
        for cycle in range(len(vectors) + dut.latency):
            if cycle < len(vectors):
                ctx.set(dut.vector, int("".join("1" if b else "0" for b in vectors[cycle][::-1]),
                                        2))
            await ctx.tick()
            if cycle + 1 >= dut.latency:
                got.append(([ctx.get(dut.sums[j]) for j in range(n_rows)], ctx.get(dut.total)))

    simulate(dut, bench)
    for vector, (sums, total) in zip(vectors, got, strict=False):
        assert total == vector.sum()
        assert sums == [int((vector & row).sum()) for row in rows]


@pytest.mark.parametrize("width", [1, 3, 8, 13, 256])
def test_first_set(width):
    rng = np.random.default_rng(width)
    m = Module()
    value = Signal(width)
    any_set, index = first_set(m, value, "ffs")
    values = [0, 1, (1 << width) - 1, 1 << (width - 1)]
    values += [int(rng.integers(0, 1 << min(width, 62))) << int(rng.integers(0, max(1, width - 62)))
               for _ in range(20)]

    async def bench(ctx):
        for v in values:
            v &= (1 << width) - 1
            ctx.set(value, v)
            assert ctx.get(any_set) == (v != 0)
            if v:
                assert ctx.get(index) == (v & -v).bit_length() - 1

    simulate(m, bench, clock=False)


def _check_random_choices(build, check):
    """Drive five signed values and their valid flags with 200 random draws (seed 4) into
    ``build(m, values, valids)``; ``check(ctx, built, values, valids)`` checks each draw."""
    m = Module()
    values = [Signal(signed(6), name=f"v{j}") for j in range(5)]
    valids = [Signal(name=f"ok{j}") for j in range(5)]
    built = build(m, values, valids)
    rng = np.random.default_rng(4)

    async def bench(ctx):
        for _ in range(200):
            vs = rng.integers(-4, 4, size=5)
            oks = rng.random(5) < 0.6
            for j in range(5):
                ctx.set(values[j], int(vs[j]))
                ctx.set(valids[j], bool(oks[j]))
            check(ctx, built, vs, oks)

    simulate(m, bench, clock=False)


def test_argmax_ties_go_to_the_lower_index():
    def check(ctx, built, vs, oks):
        any_valid, index = built
        assert ctx.get(any_valid) == oks.any()
        if oks.any():
            masked = np.where(oks, vs, -100)
            assert ctx.get(index) == int(np.argmax(masked))

    _check_random_choices(
        lambda m, values, valids: argmax(m, list(zip(valids, values, strict=True)), "argmax"),
        check)


def test_winner_ties_go_to_the_lower_index():
    def check(ctx, onehot, vs, oks):
        expected = 1 << int(np.argmax(np.where(oks, vs, -100))) if oks.any() else 0
        assert ctx.get(onehot) == expected

    _check_random_choices(
        lambda m, values, valids: winner(m, compare_all(m, values, "ge"), valids, "winner"),
        check)


@pytest.mark.parametrize(("bits", "width"), [(1, 2), (3, 8), (8, 256), (8, 200)])
def test_decode(bits, width):
    m = Module()
    value = Signal(bits)
    onehot = decode(m, value, width, "onehot")

    async def bench(ctx):
        for v in range(1 << bits):
            ctx.set(value, v)
            assert ctx.get(onehot) == ((1 << v) & ((1 << width) - 1))

    simulate(m, bench, clock=False)


@pytest.mark.parametrize("width", [1, 16, 40])
def test_lowest_one_hot(width):
    rng = np.random.default_rng(width)
    m = Module()
    value = Signal(width)
    onehot = lowest_one_hot(m, value, "lowest")
    values = [0, 1, 1 << (width - 1), (1 << width) - 1]
    values += [int("".join(rng.choice(["0", "1"], p=[0.9, 0.1], size=width)), 2)
               for _ in range(30)]

    async def bench(ctx):
        for v in values:
            ctx.set(value, v)
            assert ctx.get(onehot) == v & -v

    simulate(m, bench, clock=False)


@pytest.mark.parametrize("width", [1, 10, 16])
def test_encode(width):
    m = Module()
    onehot = Signal(width)
    index = Signal(max(1, (width - 1).bit_length()))
    m.d.comb += index.eq(encode(onehot, len(index)))

    async def bench(ctx):
        ctx.set(onehot, 0)
        assert ctx.get(index) == 0
        for j in range(width):
            ctx.set(onehot, 1 << j)
            assert ctx.get(index) == j

    simulate(m, bench, clock=False)
