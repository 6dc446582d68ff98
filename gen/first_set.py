"""Find-first-set (a balanced tree of 2:1 multiplexers), the lowest set bit as one-hot, a
predecoded one-hot decoder and its inverse."""

import functools
import operator

from amaranth.hdl import Cat, Const, Mux, Signal
from amaranth.utils import ceil_log2

__all__ = ["first_set", "decode", "encode", "lowest_one_hot"]


def first_set(m, value, name):
    """Return signals ``(any, index)`` for the lowest set bit of ``value`` (combinational).

    ``index`` is ``ceil(log2(len(value)))`` bits wide (at least one) and has no meaning when no
    bit is set. The tree has ``log2`` levels, so a 256-bit search is 8 multiplexer levels deep
    rather than a 256-long priority chain. Every tree node is a named signal, so that shared
    sub-expressions are emitted once.
    """
    bits = [value[i] for i in range(len(value))]
    width = max(1, ceil_log2(len(bits)))
    bits += [Const(0, 1)] * ((1 << width) - len(bits))
    nodes = [(bit, Const(0, 0)) for bit in bits]
    for level in range(width):
        merged = []
        for index, ((any_lo, idx_lo), (any_hi, idx_hi)) in enumerate(
                zip(nodes[0::2], nodes[1::2], strict=True)):
            node_any = Signal(name=f"{name}_any_{level}_{index}")
            node_index = Signal(level + 1, name=f"{name}_index_{level}_{index}")
            m.d.comb += [
                node_any.eq(any_lo | any_hi),
                node_index.eq(Cat(Mux(any_lo, idx_lo, idx_hi), ~any_lo)),
            ]
            merged.append((node_any, node_index))
        nodes = merged
    return nodes[0]


def decode(m, value, width, name):
    """One-hot decoder: a ``width``-bit signal with bit ``value`` set (combinational).

    Built from two predecoded halves of ``value`` (each a small one-hot) and one AND per output,
    which maps to far fewer LUTs than a shift of a constant 1.
    """
    bits = len(value)
    low_bits = bits // 2
    low_count, high_count = 1 << low_bits, 1 << (bits - low_bits)
    low = Signal(low_count, name=f"{name}_low")
    high = Signal(high_count, name=f"{name}_high")
    m.d.comb += [
        low.eq(Cat(*[value[:low_bits] == i for i in range(low_count)]) if low_bits else 1),
        high.eq(Cat(*[value[low_bits:] == i for i in range(high_count)])),
    ]
    onehot = Signal(width, name=name)
    m.d.comb += onehot.eq(Cat(*[high[i >> low_bits] & low[i & (low_count - 1)]
                                for i in range(width)]))
    return onehot


def encode(onehot, width):
    """The index of the set bit of a one-hot value as a ``width``-bit value (0 when none is
    set): an OR of the indices, flatter than :func:`first_set` where one bit at most is set."""
    return functools.reduce(operator.or_, [Mux(onehot[j], Const(j, width), 0)
                                           for j in range(len(onehot))])


def lowest_one_hot(m, value, name):
    """The lowest set bit of ``value`` alone, one-hot (0 when none is set; combinational):
    ``value & -value``, a carry chain as long as ``value``."""
    onehot = Signal(len(value), name=name)
    m.d.comb += onehot.eq(value & (~value + 1))
    return onehot
