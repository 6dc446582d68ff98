"""The first hidden layer, event-driven: one weight column per input spike."""

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model import packing
from ..model.network import MAX_STEP
from .layouts import event_layout, spike_vector_layout
from .weight_loader import LayerComponent, require_layer, writable_thresholds

__all__ = ["EventLayer", "counter_shape"]


def counter_shape(n_inputs):
    """A potential less its firing level ``threshold + 1``: ``-2 n_inputs .. n_inputs - 1``."""
    return signed((2 * n_inputs).bit_length() + 1)


class EventLayer(LayerComponent):
    """First hidden layer: integrate-and-fire over time-ordered input events.

    Each token carries up to ``events_per_cycle`` events, slot ``w`` an input ``i`` with
    ``i % events_per_cycle == w``. Each event reads the weight column of its input from its
    slot's ROM bank (``packing.column_rom_words`` layout: ``lanes`` weights per word, one word
    per lane group, bank ``i % events_per_cycle``), and each of the ``lanes`` counters of the
    token's group adds the sum of the slots' ±1 weights. A counter holds the potential less
    ``threshold + 1`` (it starts at ``-(threshold + 1)``), so a neuron's potential exceeds its
    threshold exactly when its counter's sign bit is clear; the counters cannot overflow
    (:func:`counter_shape`).

    At the end of each step (``step_end``) the neurons that have crossed and had not fired yet
    spike: one spike vector token is sent per active step, stamped with the spike time
    ``step + 1`` (the one-step delay of each layer). ``start`` tokens reset the counters and
    the fired flags and are passed on as empty vectors.

    Stages: ``i_events`` at cycle ``c`` addresses the ROM; cycle ``c + 1`` adds the column;
    cycle ``c + 2`` compares; the token is on ``o_spikes`` at ``c + 3`` (:attr:`latency`).

    Parameters
    ----------
    layer : :class:`bs4nn.model.network.Layer`
    lanes : int
        Counters updated per cycle, ``1 .. layer.n_out``.
    events_per_cycle : int
        Event slots per token (a power of two).
    weight_fields : list of ``(name, width)`` or None
        ``packing.weight_stream_fields`` of the design to make the weights and thresholds
        writable through ``w_weights`` (else the ROM and the thresholds are fixed).

    Members
    -------
    i_events : ``In(stream.Signature(event_layout(n_in, groups, events_per_cycle),
        always_ready=True))``
    o_spikes : ``Out(stream.Signature(spike_vector_layout(n_out), always_ready=True))``
    w_weights : ``In(stream.Signature(weight_write_layout(weight_fields), always_ready=True))``,
        only with ``weight_fields``: writes a column ROM word (bank: the address modulo
        ``events_per_cycle``) or a threshold.
    """

    latency = 3

    def __init__(self, layer, lanes, *, events_per_cycle=1, weight_fields=None):
        require_layer(layer)
        if not isinstance(lanes, int) or not 1 <= lanes <= layer.n_out:
            raise ValueError(f"lanes must be between 1 and {layer.n_out}, got {lanes!r}")
        if (not isinstance(events_per_cycle, int) or events_per_cycle < 1
                or events_per_cycle & (events_per_cycle - 1)):
            raise ValueError(f"events_per_cycle must be a power of two, got {events_per_cycle!r}")
        self._lanes = lanes
        self._events_per_cycle = events_per_cycle
        words = packing.column_rom_words(layer.bits, lanes, events_per_cycle)
        self._bank_init = [words[bank::events_per_cycle] for bank in range(events_per_cycle)]
        self._groups = -(-layer.n_out // lanes)
        super().__init__(layer, {
            "i_events": In(stream.Signature(
                event_layout(layer.n_in, self._groups, events_per_cycle), always_ready=True)),
            "o_spikes": Out(stream.Signature(spike_vector_layout(layer.n_out),
                                             always_ready=True)),
        }, weight_fields)

    @property
    def lanes(self):
        return self._lanes

    @property
    def groups(self):
        """Lane groups: cycles per input event."""
        return self._groups

    @property
    def events_per_cycle(self):
        return self._events_per_cycle

    @property
    def bank_depth(self):
        """Words per ROM bank: ``ceil(n_in / events_per_cycle) * groups``."""
        return len(self._bank_init[0])

    def elaborate(self, platform):
        m = Module()
        layer, lanes, groups = self._layer, self._lanes, self.groups
        n_banks = self._events_per_cycle
        bank_bits = n_banks.bit_length() - 1
        weights = self.weight_port
        event = self.i_events.payload
        reads = []
        # With several banks, an empty slot reads an extra all-zero word (no masking per
        # neuron): every weight read is then a +1 (bit set) of an event in the round.
        zero_word = [0] if n_banks > 1 else []
        for bank, init in enumerate(self._bank_init):
            rom = m.submodules[f"rom{bank}" if n_banks > 1 else "rom"] = Memory(
                shape=lanes, depth=self.bank_depth + len(zero_word), init=init + zero_word)
            read = rom.read_port()
            reads.append(read)
            if weights is not None:
                write = rom.write_port()
                target = weights.payload.address
                m.d.comb += [
                    write.addr.eq(target[bank_bits:]),
                    write.data.eq(weights.payload.data),
                    write.en.eq(weights.valid
                                & (weights.payload.kind == packing.WEIGHT_KIND_WEIGHTS)
                                & (target[:bank_bits] == bank if bank_bits else 1)),
                ]
            row = event.pixels[bank][bank_bits:]
            address = row if groups == 1 else row * groups + event.group
            m.d.comb += read.addr.eq(Mux(event.slots[bank], address, self.bank_depth)
                                     if n_banks > 1 else address)
        thresholds = writable_thresholds(m, layer, weights)

        # Stage B: add the column.
        b_valid, b_token = Signal(), Signal.like(event)
        m.d.sync += [b_valid.eq(self.i_events.valid), b_token.eq(event)]
        shape = counter_shape(layer.n_in)
        # A round of n events, p of them with weight +1 for a neuron, adds 2p - n to it.
        events = Signal(range(n_banks + 1))
        m.d.comb += events.eq(sum(b_token.slots[bank] for bank in range(n_banks)))
        counters = []
        for j in range(layer.n_out):
            # Every image's start token sets the counters, so they need no domain reset:
            # without one, the start token maps to the flip-flops' own synchronous set/reset
            # instead of a multiplexer per bit.
            counter = Signal(shape, name=f"counter{j}", init=-(int(layer.thresholds[j]) + 1),
                             reset_less=True)
            init = -(thresholds[j] + 1)
            counters.append(counter)
            if n_banks > 1:
                positives = Signal(range(n_banks + 1), name=f"positives{j}")
                m.d.comb += positives.eq(sum(read.data[j % lanes] for read in reads))
                delta = (positives << 1) - events
            else:
                delta = Mux(reads[0].data[j % lanes], 1, -1)
            in_group = b_token.group == j // lanes if groups > 1 else 1
            with m.If(b_valid):
                with m.If(b_token.start):
                    m.d.sync += counter.eq(init)
                with m.Elif(in_group):
                    m.d.sync += counter.eq(counter + delta)

        # Stage C: compare at the end of each step.
        c_valid, c_token = Signal(), Signal.like(event)
        m.d.sync += [c_valid.eq(b_valid), c_token.eq(b_token)]
        fired = Signal(layer.n_out)
        crossed = Cat(*[~counter[-1] for counter in counters])
        spikes = Signal(layer.n_out)
        m.d.comb += spikes.eq(crossed & ~fired)
        with m.If(c_valid & c_token.start):
            m.d.sync += fired.eq(0)
        with m.Elif(c_valid & c_token.step_end):
            m.d.sync += fired.eq(fired | crossed)

        o = self.o_spikes
        m.d.sync += [
            o.valid.eq(c_valid & (c_token.start | c_token.step_end)),
            o.payload.spikes.eq(Mux(c_token.start, 0, spikes)),
            # Input events are at steps 0..MAX_STEP - 1, so spike times stay <= MAX_STEP.
            o.payload.step.eq(c_token.step + 1),
            o.payload.start.eq(c_token.start),
            o.payload.end.eq(c_token.end),
            o.payload.error.eq(c_token.error),
        ]
        assert MAX_STEP == 255
        return m

