"""Hidden layers after the first: a whole step's spike vector per cycle."""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import data, stream
from amaranth.lib.wiring import In, Out

from ..model.network import MAX_STEP, NO_SPIKE
from .event_layer import counter_shape
from .layouts import spike_vector_layout
from .popcount import RowPopcount, popcount_latency
from .weight_loader import LayerComponent, require_layer, writable_rows, writable_thresholds

__all__ = ["VectorLayer", "delay_line", "step_front_end"]


def delay_line(m, value, cycles, name):
    """``value`` delayed by ``cycles`` registers (a list of the registers, last one last)."""
    stages = []
    for index in range(cycles):
        reg = Signal.like(value, name=f"{name}{index}")
        m.d.sync += reg.eq(value)
        stages.append(reg)
        value = reg
    return stages


def step_front_end(m, layer, i_spikes, weights):
    """The input side of a step layer: the popcount of each step's spike vector against every
    weight row (ROM rows, or rows written through ``weights`` when not ``None``), the
    thresholds, and the step's token fields delayed to line up with the popcount's sums.

    Returns ``(popcount, thresholds, delayed_meta)``.
    """
    popcount = m.submodules.popcount = RowPopcount(
        layer.n_in, layer.bits if weights is None else layer.n_out)
    token = i_spikes.payload
    m.d.comb += popcount.vector.eq(token.spikes)
    if weights is not None:
        for j, row in enumerate(writable_rows(m, layer, weights)):
            m.d.comb += popcount.rows[j].eq(row)
    thresholds = writable_thresholds(m, layer, weights)
    meta = Signal(data.StructLayout({"valid": 1, "step": token.step.shape(), "start": 1,
                                     "end": 1, "error": 1}))
    m.d.comb += meta.eq(Cat(i_spikes.valid, token.step, token.start, token.end, token.error))
    return popcount, thresholds, delay_line(m, meta, popcount.latency, "a_meta")[-1]


class VectorLayer(LayerComponent):
    """A hidden layer fed by the previous layer's spike vector, one active step per token.

    Each neuron's potential grows by ``2 * popcount(spikes & row) - popcount(spikes)`` (the ±1
    weights summed over the inputs that spiked), through a :class:`RowPopcount` pipeline. The
    counters hold the potential less ``threshold + 1`` as in :class:`~.event_layer.EventLayer`;
    neurons crossing at a step ``<= MAX_STEP - 1`` spike at ``step + 1``; a crossing at
    ``MAX_STEP`` or later makes no spike.

    Latency: ``RowPopcount.latency`` cycles of adder tree, one to accumulate, one to compare
    (:attr:`latency`). One token is sent for each token received.

    Parameters
    ----------
    layer : :class:`bs4nn.model.network.Layer`
    weight_fields : list of ``(name, width)`` or None
        ``packing.weight_stream_fields`` of the design to keep rows and thresholds in registers
        written through ``w_weights`` (else they are constants).

    Members
    -------
    i_spikes : ``In(stream.Signature(spike_vector_layout(n_in), always_ready=True))``
    o_spikes : ``Out(stream.Signature(spike_vector_layout(n_out), always_ready=True))``
    w_weights : ``In(stream.Signature(weight_write_layout(weight_fields), always_ready=True))``,
        only with ``weight_fields``
    """

    def __init__(self, layer, *, weight_fields=None):
        require_layer(layer)
        super().__init__(layer, {
            "i_spikes": In(stream.Signature(spike_vector_layout(layer.n_in), always_ready=True)),
            "o_spikes": Out(stream.Signature(spike_vector_layout(layer.n_out),
                                             always_ready=True)),
        }, weight_fields)

    @property
    def latency(self):
        """Adder tree, accumulate, compare."""
        return popcount_latency(self._layer.n_in) + 2

    def elaborate(self, platform):
        m = Module()
        layer = self._layer
        popcount, thresholds, a_meta = step_front_end(
            m, layer, self.i_spikes, self.weight_port)

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

        # Compare.
        fired = Signal(layer.n_out)
        crossed = Cat(*[~counter[-1] for counter in counters])
        with m.If(c_meta.valid):
            m.d.sync += fired.eq(Mux(c_meta.start, 0, fired | crossed))
        o = self.o_spikes
        can_spike = ~c_meta.start & (c_meta.step < MAX_STEP)
        m.d.sync += [
            o.valid.eq(c_meta.valid),
            o.payload.spikes.eq(Mux(can_spike, crossed & ~fired, 0)),
            o.payload.step.eq(Mux(c_meta.step >= MAX_STEP, NO_SPIKE, c_meta.step + 1)),
            o.payload.start.eq(c_meta.start),
            o.payload.end.eq(c_meta.end),
            o.payload.error.eq(c_meta.error),
        ]
        return m

