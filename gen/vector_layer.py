"""Hidden layers after the first: a step's spike vector (or a chunk of it) per cycle."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model import packing
from ..model.network import MAX_STEP, NO_SPIKE
from .event_layer import counter_shape
from .layouts import spike_vector_layout
from .popcount import LEVELS_PER_STAGE, RowPopcount, popcount_latency
from .weight_loader import LayerComponent, require_layer, writable_rows, writable_thresholds

__all__ = ["VectorLayer", "delay_line", "step_front_end", "front_end_latency", "input_groups"]


def delay_line(m, value, cycles, name):
    """``value`` delayed by ``cycles`` registers (a list of the registers, last one last)."""
    stages = []
    for index in range(cycles):
        reg = Signal.like(value, name=f"{name}{index}")
        m.d.sync += reg.eq(value)
        stages.append(reg)
        value = reg
    return stages


def input_groups(layer, input_lanes):
    """Tokens per step into a step layer fed ``input_lanes`` inputs at a time (None: all)."""
    if input_lanes is None:
        return 1
    if not isinstance(input_lanes, int) or not 1 <= input_lanes <= layer.n_in:
        raise ValueError(f"input_lanes must be between 1 and {layer.n_in}, got {input_lanes!r}")
    return -(-layer.n_in // input_lanes)


#: Adder levels between the registers of the step layers' popcount trees in the pipelined
#: build (see :func:`step_front_end`).
PIPELINED_LEVELS_PER_STAGE = 2


def _levels_per_stage(pipelined):
    return PIPELINED_LEVELS_PER_STAGE if pipelined else LEVELS_PER_STAGE


def front_end_latency(layer, input_lanes, pipelined=False):
    """Cycles through :func:`step_front_end`: the adder tree, and with chunked inputs the
    read of the chunk's weights before it (two cycles when ``pipelined``)."""
    levels = _levels_per_stage(pipelined)
    if input_groups(layer, input_lanes) == 1:
        return popcount_latency(layer.n_in, levels)
    return 1 + pipelined + popcount_latency(input_lanes, levels)


def step_front_end(m, layer, i_spikes, weights, input_lanes=None, pipelined=False):
    """The input side of a step layer: the popcount of each token's spikes against every
    weight row, the thresholds, and the token's fields delayed to line up with the sums.

    With whole spike vectors (``input_lanes`` None) the rows are ROM constants, or registers
    written through ``weights`` when not ``None``. With chunks of ``input_lanes`` inputs
    (after a folded layer) each token's chunk of every row is read from a memory
    (``packing.chunk_rom_words``, written through ``weights`` when not ``None``) in the
    cycle before its adder tree. ``last`` in the delayed fields marks a step's last token.
    ``pipelined``: the trees are registered every :data:`PIPELINED_LEVELS_PER_STAGE` adder
    levels (else every ``LEVELS_PER_STAGE``), and the chunk read goes into a register before
    the tree (a block RAM's output comes late in the cycle).

    Returns ``(popcount, thresholds, delayed_meta)``.
    """
    levels = _levels_per_stage(pipelined)
    groups = input_groups(layer, input_lanes)
    token = i_spikes.payload
    meta = Signal(data.StructLayout({"valid": 1, "step": token.step.shape(), "start": 1,
                                     "end": 1, "error": 1, "last": 1}))
    m.d.comb += meta.eq(Cat(i_spikes.valid, token.step, token.start, token.end, token.error,
                            token.group == groups - 1))
    thresholds = writable_thresholds(m, layer, weights)
    if groups == 1:
        popcount = m.submodules.popcount = RowPopcount(
            layer.n_in, layer.bits if weights is None else layer.n_out, levels_per_stage=levels)
        m.d.comb += popcount.vector.eq(token.spikes)
        if weights is not None:
            for j, row in enumerate(writable_rows(m, layer, weights)):
                m.d.comb += popcount.rows[j].eq(row)
        return popcount, thresholds, delay_line(m, meta, popcount.latency, "a_meta")[-1]

    rom = m.submodules.rom = Memory(shape=layer.n_out * input_lanes, depth=groups,
                                    init=packing.chunk_rom_words(layer.bits, input_lanes))
    read = rom.read_port()
    m.d.comb += read.addr.eq(token.group)
    if weights is not None:
        write = rom.write_port()
        m.d.comb += [
            write.addr.eq(weights.payload.address),
            write.data.eq(weights.payload.data),
            write.en.eq(weights.valid & (weights.payload.kind == packing.WEIGHT_KIND_WEIGHTS)),
        ]
    popcount = m.submodules.popcount = RowPopcount(input_lanes, layer.n_out,
                                                   levels_per_stage=levels)
    chunk = delay_line(m, token.spikes, 1 + pipelined, "chunk")[-1]
    rows = read.data
    if pipelined:
        rows = Signal.like(read.data, name="chunk_rows")
        m.d.sync += rows.eq(read.data)
    m.d.comb += popcount.vector.eq(chunk)
    for j in range(layer.n_out):
        m.d.comb += popcount.rows[j].eq(rows[j * input_lanes:(j + 1) * input_lanes])
    return popcount, thresholds, delay_line(m, meta, 1 + pipelined + popcount.latency,
                                            "a_meta")[-1]


class VectorLayer(LayerComponent):
    """A hidden layer fed by the previous layer's spike vector, one active step per token
    (or, after a folded layer, per ``ceil(n_in / input_lanes)`` tokens of ``input_lanes``).

    Each neuron's potential grows by ``2 * popcount(spikes & row) - popcount(spikes)`` (the ±1
    weights summed over the inputs that spiked), through a :class:`RowPopcount` pipeline. The
    counters hold the potential less ``threshold + 1`` as in :class:`~.event_layer.EventLayer`;
    neurons crossing at a step ``<= MAX_STEP - 1`` spike at ``step + 1``; a crossing at
    ``MAX_STEP`` or later makes no spike.

    Latency: :func:`front_end_latency`, one cycle to accumulate, one to compare
    (:attr:`latency`). One token is sent for each step (its last token) and each start token.

    Parameters
    ----------
    layer : :class:`bs4nn.model.network.Layer`
    input_lanes : int or None
        Inputs per token when fed by a folded layer (None: whole vectors).
    weight_fields : list of ``(name, width)`` or None
        ``packing.weight_stream_fields`` of the design to keep rows and thresholds in registers
        (chunks: a memory) written through ``w_weights`` (else they are constants).
    pipelined : bool
        Shorter paths for more cycles (see :func:`step_front_end`).

    Members
    -------
    i_spikes : ``In(stream.Signature(spike_vector_layout(input_lanes or n_in, groups),
        always_ready=True))``
    o_spikes : ``Out(stream.Signature(spike_vector_layout(n_out), always_ready=True))``
    w_weights : ``In(stream.Signature(weight_write_layout(weight_fields), always_ready=True))``,
        only with ``weight_fields``
    """

    def __init__(self, layer, *, input_lanes=None, weight_fields=None, pipelined=False):
        require_layer(layer)
        self._input_lanes = input_lanes
        self._pipelined = pipelined
        groups = input_groups(layer, input_lanes)
        super().__init__(layer, {
            "i_spikes": In(stream.Signature(spike_vector_layout(input_lanes or layer.n_in,
                                                                groups), always_ready=True)),
            "o_spikes": Out(stream.Signature(spike_vector_layout(layer.n_out),
                                             always_ready=True)),
        }, weight_fields)

    @property
    def latency(self):
        """Front end, accumulate, compare."""
        return front_end_latency(self._layer, self._input_lanes, self._pipelined) + 2

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        popcount, thresholds, a_meta = step_front_end(
            m, layer, self.i_spikes, self.weight_port, self._input_lanes, self._pipelined)

        # Accumulate.
        shape = counter_shape(layer.n_in)
        counters = []
        for j in range(layer.n_out):
            # Set by every start token: no domain reset needed (see EventLayer).
            counter = Signal(shape, name=f"counter{j}", init=-(int(layer.thresholds[j]) + 1),
                             reset_less=True)
            init = -(thresholds[j] + 1)
            counters.append(counter)
            delta = popcount.sums[j] * 2 - popcount.total
            with m.If(a_meta.valid):
                m.d.sync += counter.eq(Mux(a_meta.start, init, counter + delta))
        c_meta = Signal.like(a_meta)
        m.d.sync += c_meta.eq(a_meta)

        # Compare, at the last token of each step.
        fired = Signal(layer.n_out)
        crossed = Cat(*[~counter[-1] for counter in counters])
        closes = c_meta.valid & (c_meta.start | c_meta.last)
        with m.If(closes):
            m.d.sync += fired.eq(Mux(c_meta.start, 0, fired | crossed))
        o = self.o_spikes
        can_spike = ~c_meta.start & (c_meta.step < MAX_STEP)
        m.d.sync += [
            o.valid.eq(closes),
            o.payload.spikes.eq(Mux(can_spike, crossed & ~fired, 0)),
            o.payload.step.eq(Mux(c_meta.step >= MAX_STEP, NO_SPIKE, c_meta.step + 1)),
            o.payload.start.eq(c_meta.start),
            o.payload.end.eq(c_meta.end),
            o.payload.error.eq(c_meta.error),
        ]
        return m
