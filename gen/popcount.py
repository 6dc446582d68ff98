"""Pipelined popcounts of a spike vector under each weight row (the step layers' adder trees)."""

import numpy as np
from amaranth.hdl import Const, Module, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["RowPopcount", "popcount_depth", "popcount_latency", "LEVELS_PER_STAGE"]

#: Adder levels between the registers of a popcount tree.
LEVELS_PER_STAGE = 3


def popcount_depth(n_inputs):
    """Adder levels of a popcount tree over ``n_inputs`` bits (at least 1)."""
    return max(1, ceil_log2(n_inputs))


def popcount_latency(n_inputs, levels_per_stage=LEVELS_PER_STAGE):
    """Cycles through a :class:`RowPopcount` over ``n_inputs`` bits."""
    return -(-popcount_depth(n_inputs) // levels_per_stage)


class RowPopcount(wiring.Component):
    """``sums[j] = popcount(vector & rows[j])`` and ``total = popcount(vector)``, pipelined.

    Each popcount is a binary adder tree, registered every ``levels_per_stage`` levels, so the
    results appear :attr:`latency` cycles after ``vector`` (every tree has the same latency; a
    tree over fewer bits passes its sum through the remaining registers).

    Parameters
    ----------
    n_inputs : int
        Width of the vector.
    rows : bool array ``(n_rows, n_inputs)`` or int
        Constant weight rows (a 1 selects the input), folded into the trees; or the number of
        rows, which are then the run-time port ``rows``.
    levels_per_stage : int
        Adder levels between registers.

    Members
    -------
    vector : ``In(n_inputs)``
    rows : ``In(data.ArrayLayout(n_inputs, n_rows))``, only with run-time rows
    sums : ``Out(data.ArrayLayout(count_shape, n_rows))``
    total : ``Out(count_shape)``, where ``count_shape`` holds ``0 .. n_inputs``
    """

    def __init__(self, n_inputs, rows, *, levels_per_stage=LEVELS_PER_STAGE):
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        if not isinstance(levels_per_stage, int) or levels_per_stage < 1:
            raise ValueError(f"levels_per_stage must be a positive integer, "
                             f"got {levels_per_stage!r}")
        if isinstance(rows, int):
            if rows < 1:
                raise ValueError(f"rows must be positive, got {rows}")
            self._rows, n_rows = None, rows
        else:
            rows = np.asarray(rows, dtype=bool)
            if rows.ndim != 2 or rows.shape[1] != n_inputs or rows.shape[0] < 1:
                raise ValueError(f"rows must have shape (n_rows, {n_inputs}), got {rows.shape}")
            self._rows, n_rows = rows, rows.shape[0]
        self._n_inputs = n_inputs
        self._n_rows = n_rows
        self._levels_per_stage = levels_per_stage
        members = {
            "vector": In(n_inputs),
            "sums": Out(data.ArrayLayout(self.count_shape, n_rows)),
            "total": Out(self.count_shape),
        }
        if self._rows is None:
            members["rows"] = In(data.ArrayLayout(n_inputs, n_rows))
        super().__init__(members)

    @property
    def n_inputs(self):
        return self._n_inputs

    @property
    def n_rows(self):
        return self._n_rows

    @property
    def count_shape(self):
        return unsigned(self._n_inputs.bit_length())

    @property
    def depth(self):
        """Adder levels of the widest tree (at least 1)."""
        return popcount_depth(self._n_inputs)

    @property
    def latency(self):
        """Cycles from ``vector`` to ``sums``/``total``."""
        return popcount_latency(self._n_inputs, self._levels_per_stage)

    def _tree(self, m, leaves, name):
        nodes = list(leaves) or [Const(0, 1)]
        for level in range(self.depth):
            paired = [a + b for a, b in zip(nodes[0::2], nodes[1::2], strict=False)]
            if len(nodes) % 2:
                paired.append(nodes[-1])
            nodes = paired
            if (level + 1) % self._levels_per_stage == 0 or level + 1 == self.depth:
                registered = []
                for index, node in enumerate(nodes):
                    # Data only (no reset): a reset net to every stage of every tree would
                    # span the layer.
                    reg = Signal(len(node), name=f"{name}_l{level}_{index}", reset_less=True)
                    m.d.sync += reg.eq(node)
                    registered.append(reg)
                nodes = registered
        assert len(nodes) == 1
        return nodes[0]

    def elaborate(self, platform):
        m = Module()
        vector = self.vector
        m.d.comb += self.total.eq(self._tree(m, [vector[i] for i in range(self._n_inputs)],
                                             "total"))
        for j in range(self._n_rows):
            if self._rows is None:
                leaves = [vector[i] & self.rows[j][i] for i in range(self._n_inputs)]
            else:
                leaves = [vector[int(i)] for i in np.flatnonzero(self._rows[j])]
            m.d.comb += self.sums[j].eq(self._tree(m, leaves, f"row{j}"))
        return m
