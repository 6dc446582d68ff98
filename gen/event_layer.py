"""The first hidden layer, event-driven: one weight column per input spike."""

from types import SimpleNamespace

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..model import packing
from ..model.network import MAX_STEP
from .layouts import event_layout, spike_vector_layout
from .replicas import copies_for, replicated_register, replicated_tree
from .spram import Spram
from .weight_loader import LayerComponent, require_layer, writable_thresholds

__all__ = ["EventLayer", "counter_shape"]

#: The smallest weight bank (in bits) that asks the synthesis tools for block RAM.
BLOCK_RAM_REQUEST_BITS = 4096


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

    At the end of each step (``step_end``, on every lane group's token of the step's last
    round) the neurons that have crossed and had not fired yet spike: the spikes of a step are
    sent as one token per lane group (:func:`spike_vector_layout` with ``lanes`` neurons and
    ``groups`` groups; one token of all ``n_out`` neurons when ``lanes == n_out``), stamped
    with the spike time ``step + 1`` (the one-step delay of each layer). ``start`` tokens
    reset the counters and the fired flags and are passed on as empty tokens of group 0.

    With ``lanes == n_out`` every neuron has its counter register. With fewer lanes the layer
    is *folded*: the counters and fired flags live in a memory, ``lanes`` per word, and each
    token updates its lane group's word (:meth:`_folded_neurons`); the logic then scales with
    ``lanes``, not with ``n_out``.

    Stages: ``i_events`` at cycle ``c`` addresses the ROM (and the folded state); with
    ``registered_reads`` cycle ``c + 1`` puts what they read into registers; the next cycle
    adds the column, the one after compares, and the token is on ``o_spikes`` in the cycle
    after that (:attr:`latency`: ``c + 3``, or ``c + 4`` with ``registered_reads``).

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
    spram : bool
        Keep the columns in SB_SPRAM256KA blocks (:class:`~.spram.Spram`, no initial
        contents; with ``weight_fields`` and one event per cycle).
    registered_reads : bool
        Put the block RAMs' outputs into registers before any logic (one cycle more): a block
        RAM's output comes late in the cycle (5.6 ns after the clock for an ECP5 DP16KD
        without its output register, as nextpnr times it).

    Members
    -------
    i_events : ``In(stream.Signature(event_layout(n_in, groups, events_per_cycle),
        always_ready=True))``
    o_spikes : ``Out(stream.Signature(spike_vector_layout(lanes, groups),
        always_ready=True))``
    w_weights : ``In(stream.Signature(weight_write_layout(weight_fields), always_ready=True))``,
        only with ``weight_fields``: writes a column ROM word (bank: the address modulo
        ``events_per_cycle``) or a threshold (``packing.threshold_address``).
    """

    def __init__(self, layer, lanes, *, events_per_cycle=1, weight_fields=None, spram=False,
                 registered_reads=False):
        require_layer(layer)
        if not isinstance(lanes, int) or not 1 <= lanes <= layer.n_out:
            raise ValueError(f"lanes must be between 1 and {layer.n_out}, got {lanes!r}")
        if (not isinstance(events_per_cycle, int) or events_per_cycle < 1
                or events_per_cycle & (events_per_cycle - 1)):
            raise ValueError(f"events_per_cycle must be a power of two, got {events_per_cycle!r}")
        if spram and (weight_fields is None or events_per_cycle != 1):
            raise ValueError("spram needs weight_fields (its weights are loaded at run time) "
                             "and one event per cycle")
        if not isinstance(registered_reads, bool):
            raise TypeError(f"registered_reads must be True or False, got {registered_reads!r}")
        self._lanes = lanes
        self._events_per_cycle = events_per_cycle
        self._spram = spram
        self._registered_reads = registered_reads
        words = packing.column_rom_words(layer.bits, lanes, events_per_cycle)
        self._bank_init = [words[bank::events_per_cycle] for bank in range(events_per_cycle)]
        self._groups = -(-layer.n_out // lanes)
        super().__init__(layer, {
            "i_events": In(stream.Signature(
                event_layout(layer.n_in, self._groups, events_per_cycle), always_ready=True)),
            "o_spikes": Out(stream.Signature(spike_vector_layout(lanes, self._groups),
                                             always_ready=True)),
        }, weight_fields)

    @property
    def lanes(self):
        return self._lanes

    @property
    def registered_reads(self):
        return self._registered_reads

    @property
    def latency(self):
        """Cycles from a token on ``i_events`` to its spikes on ``o_spikes``."""
        return 3 + self._registered_reads

    @property
    def groups(self):
        """Lane groups: cycles per input event."""
        return self._groups

    @property
    def events_per_cycle(self):
        return self._events_per_cycle

    @property
    def folded(self):
        """Whether the counters live in a memory (``lanes < n_out``)."""
        return self._lanes < self._layer.n_out

    @property
    def bank_depth(self):
        """Words per ROM bank: ``ceil(n_in / events_per_cycle) * groups``."""
        return len(self._bank_init[0])

    def elaborate(self, platform):
        m = Module()
        reads = [read.data for read in self._weight_reads(m)]
        # The token as it reaches the stage that adds (stage B). The tokens' fields are data
        # (no reset): each stage's `valid` says whether they mean anything.
        a_valid, a_token = self.i_events.valid, self.i_events.payload
        if self._registered_reads:
            a_valid, a_token = Signal(), Signal.like(a_token, name="r_token", reset_less=True)
            m.d.sync += [a_valid.eq(self.i_events.valid), a_token.eq(self.i_events.payload)]
            reads = self._registered(m, reads, "weights")
        b_valid, b_token = Signal(), Signal.like(self.i_events.payload, reset_less=True)
        m.d.sync += [b_valid.eq(a_valid), b_token.eq(a_token)]
        deltas = self._deltas(m, reads, b_token)
        c_valid, c_token = Signal(), Signal.like(b_token, reset_less=True)
        m.d.sync += [c_valid.eq(b_valid), c_token.eq(b_token)]
        if self.folded:
            spikes = self._folded_neurons(m, deltas, b_valid, b_token, c_token)
        else:
            spikes = self._neurons(m, deltas, a_valid, a_token, b_valid, b_token)
        o = self.o_spikes
        m.d.sync += [
            o.valid.eq(c_valid & (c_token.start | c_token.step_end)),
            o.payload.spikes.eq(spikes),
            o.payload.group.eq(c_token.group),
            # Input events are at steps 0..MAX_STEP - 1, so spike times stay <= MAX_STEP.
            o.payload.step.eq(c_token.step + 1),
            o.payload.start.eq(c_token.start),
            o.payload.end.eq(c_token.end),
            o.payload.error.eq(c_token.error),
        ]
        assert MAX_STEP == 255
        return m

    @staticmethod
    def _registered(m, values, name):
        """``values``, each put into a register of its own (stage R; data, no reset)."""
        registers = []
        for index, value in enumerate(values):
            register = Signal.like(value, name=f"{name}{index}", reset_less=True)
            m.d.sync += register.eq(value)
            registers.append(register)
        return registers

    def _weight_reads(self, m):
        """Stage A: the ROM banks, addressed by the token on ``i_events``; their read ports."""
        lanes = self._lanes
        n_banks = self._events_per_cycle
        bank_bits = n_banks.bit_length() - 1
        weights = self.weight_port
        event = self.i_events.payload
        if self._spram:
            return [self._spram_read(m)]
        reads = []
        # With several banks, an empty slot reads an extra all-zero word (no masking per
        # neuron): every weight read is then a +1 (bit set) of an event in the round.
        zero_word = [0] if n_banks > 1 else []
        depth = self.bank_depth + len(zero_word)
        # Block RAM by request: left to itself, synth_xilinx maps a bank of a few hundred
        # words (several banks) to LUTs. A bank smaller than that is left to the tools, which
        # make constants of it.
        attrs = {"ram_style": "block"} if lanes * depth >= BLOCK_RAM_REQUEST_BITS else {}
        for bank, init in enumerate(self._bank_init):
            rom = m.submodules[f"rom{bank}" if n_banks > 1 else "rom"] = Memory(
                shape=lanes, depth=depth, init=init + zero_word, attrs=attrs)
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
            address = self._column_address(bank)
            m.d.comb += read.addr.eq(Mux(event.slots[bank], address, self.bank_depth)
                                     if n_banks > 1 else address)
        return reads

    def _column_address(self, bank):
        """The address, in its bank, of the column the token on ``i_events`` reads for slot
        ``bank`` (``packing.column_rom_words``)."""
        event = self.i_events.payload
        row = event.pixels[bank][self._events_per_cycle.bit_length() - 1:]
        return row if self.groups == 1 else row * self.groups + event.group

    def _spram_read(self, m):
        """The columns in SB_SPRAM256KA blocks: one port, written between images (when no
        token reads it), else read at the token's address."""
        spram = m.submodules.rom = Spram(self._lanes, self.bank_depth)
        weights = self.weight_port
        write = weights.valid & (weights.payload.kind == packing.WEIGHT_KIND_WEIGHTS)
        m.d.comb += [
            spram.addr.eq(Mux(write, weights.payload.address, self._column_address(0))),
            spram.write_data.eq(weights.payload.data),
            spram.write_en.eq(write),
        ]
        return SimpleNamespace(data=spram.read_data)

    def _deltas(self, m, reads, b_token):
        """Stage B: what the token adds to the counter of each lane, from the words its slots
        read (``reads``, one per bank)."""
        n_banks = self._events_per_cycle
        if n_banks == 1:
            return [Mux(reads[0][lane], 1, -1) for lane in range(self._lanes)]
        # A round of n events, p of them with weight +1 for a neuron, adds 2p - n to it.
        events = Signal(range(n_banks + 1))
        m.d.comb += events.eq(sum(b_token.slots[bank] for bank in range(n_banks)))
        deltas = []
        for lane in range(self._lanes):
            positives = Signal(range(n_banks + 1), name=f"positives{lane}")
            m.d.comb += positives.eq(sum(read[lane] for read in reads))
            deltas.append((positives << 1) - events)
        return deltas

    def _neurons(self, m, deltas, a_valid, a_token, b_valid, b_token):
        """One counter register per neuron (``lanes == n_out``); returns the spikes of stage C
        (none on a start token). ``a_valid`` and ``a_token``: the token in the stage before B.

        The neurons are cut into slices, each with its own copies of the stage controls
        (:mod:`.replicas`), so that no control net reaches every counter.
        """
        layer = self._layer
        n_out = layer.n_out
        per_copy = -(-n_out // copies_for(n_out * counter_shape(layer.n_in).width))
        copies = -(-n_out // per_copy)
        slices = [slice(k * per_copy, min(n_out, (k + 1) * per_copy)) for k in range(copies)]
        if self._registered_reads:
            # Trees of copies, from the token on i_events (stage A): two levels to stage B,
            # three to stage C.
            event = self.i_events
            starts, ends = event.valid & event.payload.start, event.valid & event.payload.step_end
            enables = replicated_tree(m, event.valid, copies, "b_enable")
            loads = replicated_tree(m, starts, copies, "b_load")
            clears = replicated_tree(m, starts, copies, "c_clear", levels=3)
            closes = replicated_tree(m, ends, copies, "c_close", levels=3)
        else:
            enables = replicated_register(m, a_valid, copies, "b_enable")
            loads = replicated_register(m, a_valid & a_token.start, copies, "b_load")
            clears = replicated_register(m, b_valid & b_token.start, copies, "c_clear")
            closes = replicated_register(m, b_valid & b_token.step_end, copies, "c_close")
        thresholds = writable_thresholds(m, layer, self.weight_port)
        counters = []
        for j in range(n_out):
            # Every image's start token sets the counters, so they need no domain reset:
            # without one, the start token maps to the flip-flops' own synchronous set/reset
            # instead of a multiplexer per bit.
            counter = Signal(counter_shape(layer.n_in), name=f"counter{j}",
                             init=-(int(layer.thresholds[j]) + 1), reset_less=True)
            counters.append(counter)
            with m.If(loads[j // per_copy]):
                m.d.sync += counter.eq(-(thresholds[j] + 1))
            with m.Elif(enables[j // per_copy]):
                m.d.sync += counter.eq(counter + deltas[j])
        # Stage C: compare at the end of each step.
        fired = Signal(n_out)
        crossed = Cat(*[~counter[-1] for counter in counters])
        spikes = Signal(n_out)
        for lanes, clear, close in zip(slices, clears, closes, strict=True):
            m.d.comb += spikes[lanes].eq(Mux(clear, 0, crossed[lanes] & ~fired[lanes]))
            with m.If(clear):
                m.d.sync += fired[lanes].eq(0)
            with m.Elif(close):
                m.d.sync += fired[lanes].eq(fired[lanes] | crossed[lanes])
        return spikes

    def _folded_neurons(self, m, deltas, b_valid, b_token, c_token):
        """The counters and fired flags in a memory, one word of ``lanes`` per lane group
        (``lanes < n_out``); returns the spikes of stage C, those of the token's group.

        Words ``0 .. G - 1`` hold each group's counters and fired flags; words
        ``G .. 2G - 1`` hold their initial values (``-(threshold + 1)``, not fired), which the
        weight-load stream writes in RAM mode. An image's first round visits the groups in
        order (``0 .. G - 1``, right after its start token), so its tokens read the initial
        words and every later token its group's own word. Each token reads its group's word in
        stage A and writes it back in stage B, so the lane groups, which take turns
        (``G >= 2``), never read a word in the cycle it is written. With ``registered_reads``
        the word read goes into a register first (stage R), and with two lane groups a token
        reads its word in the cycle the previous token of its group writes it: that word is
        forwarded.
        """
        layer, lanes, groups = self._layer, self._lanes, self.groups
        shape = counter_shape(layer.n_in)
        lane_bits = shape.width + 1
        state = m.submodules.state = Memory(shape=lanes * lane_bits, depth=2 * groups,
                                            init=[0] * groups + self._initial_words(lane_bits))
        read = state.read_port()
        write = state.write_port(granularity=lane_bits)
        event, valid = self.i_events.payload, self.i_events.valid
        first_round = Signal()
        m.d.comb += read.addr.eq(Mux(first_round, groups + event.group, event.group))
        with m.If(valid & event.start):
            m.d.sync += first_round.eq(1)
        with m.Elif(valid & (event.group == groups - 1)):
            m.d.sync += first_round.eq(0)
        words = read.data
        writes_back = b_valid & ~b_token.start
        if self._registered_reads:
            words = Signal.like(read.data, name="state_word")
            if groups == 2:
                forward = Signal(name="state_forward")
                written = Signal.like(read.data, name="state_written")
                m.d.sync += [forward.eq(writes_back & (b_token.group == read.addr)),
                             written.eq(write.data)]
                m.d.sync += words.eq(Mux(forward, written, read.data))
            else:
                m.d.sync += words.eq(read.data)

        # Stage B: add, compare at the step's end, write back.
        updated, crossed, was_fired = [], Signal(lanes), Signal(lanes)
        for lane in range(lanes):
            word = words[lane * lane_bits:(lane + 1) * lane_bits]
            counter = Signal(shape, name=f"counter{lane}")
            fired = Signal(name=f"fired{lane}")
            m.d.comb += [counter.eq(word[:-1] + deltas[lane]), fired.eq(word[-1])]
            updated.append(Cat(counter, fired | (b_token.step_end & ~counter[-1])))
            m.d.sync += [crossed[lane].eq(~counter[-1]), was_fired[lane].eq(fired)]
        m.d.comb += [
            write.addr.eq(b_token.group),
            write.data.eq(Cat(*updated)),
            write.en.eq(writes_back.replicate(lanes)),
        ]
        self._threshold_writes(m, write, lane_bits)

        # Stage C: the group's neurons that crossed and had not fired (none past n_out).
        last_lanes = layer.n_out - (groups - 1) * lanes
        exists = Cat(*[(c_token.group != groups - 1) if lane >= last_lanes else 1
                       for lane in range(lanes)])
        spikes = Signal(lanes)
        m.d.comb += spikes.eq(Mux(c_token.step_end, crossed & ~was_fired & exists, 0))
        return spikes

    def _initial_words(self, lane_bits):
        """The initial state word of each lane group (``lane_bits`` per lane): counters
        ``-(threshold + 1)``, not fired (lanes past ``n_out``: -1)."""
        layer, lanes = self._layer, self._lanes
        counter_mask = (1 << (lane_bits - 1)) - 1
        words = []
        for g in range(self.groups):
            word = 0
            for lane in range(lanes):
                j = g * lanes + lane
                initial = -(int(layer.thresholds[j]) + 1) if j < layer.n_out else -1
                word |= (initial & counter_mask) << (lane * lane_bits)
            words.append(word)
        return words

    def _threshold_writes(self, m, write, lane_bits):
        """In RAM mode, a threshold write (address ``packing.threshold_address``) sets one
        lane of an initial word, between images (the write port is otherwise idle)."""
        weights = self.weight_port
        if weights is None:
            return
        lane_width = packing.threshold_lane_bits(self._lanes)
        address = weights.payload.address
        threshold = weights.payload.data[:packing.class_width(self._layer.n_in)]
        initial = Signal(lane_bits - 1)
        # -(threshold + 1) in the counter's two's complement is ~threshold.
        m.d.comb += initial.eq(~Cat(threshold, Const(0, lane_bits - 1 - len(threshold))))
        with m.If(weights.valid & (weights.payload.kind == packing.WEIGHT_KIND_THRESHOLD)):
            m.d.comb += [
                write.addr.eq(self.groups + (address >> lane_width)),
                write.data.eq(Cat(initial, Const(0, 1)).replicate(self._lanes)),
                write.en.eq(Const(1, self._lanes) << address[:lane_width]),
            ]
