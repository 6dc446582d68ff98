"""The optional debug stream: every hidden spike as an event (neuron, step, layer)."""

from amaranth.hdl import Cat, Const, Module, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from .first_set import first_set
from .layouts import debug_event_layout, spike_vector_layout, step_shape

__all__ = ["DebugEvents", "ChunkJoiner"]


class DebugEvents(wiring.Component):
    """Turn the hidden layers' spike vectors into a stream of single spike events.

    Each hidden layer's non-empty spike vectors are queued (``depth`` entries per layer) and
    taken apart one spike per cycle, lowest neuron first; the layers share the output stream,
    lowest layer first. Within a layer the events come in time order.

    The compute pipeline cannot stall, so the scheduler holds back its tokens while any queue
    is within ``reserve`` entries of full (``o_full``): every token already sent adds at most
    one vector per layer. ``o_empty`` tells that nothing is queued or being sent.

    Parameters
    ----------
    hidden_sizes : list of int
        Neurons of each hidden layer.
    reserve : int
        Vectors that may still arrive after ``o_full`` rises (tokens in flight, plus one).

    Members
    -------
    i_spikes{l} : ``In(stream.Signature(spike_vector_layout(hidden_sizes[l]), always_ready=True))``
    o_events : ``Out(stream.Signature(debug_event_layout(hidden_sizes)))``
    o_full : ``Out(1)``
    o_empty : ``Out(1)``
    """

    def __init__(self, hidden_sizes, reserve):
        hidden_sizes = [int(n) for n in hidden_sizes]
        if not hidden_sizes or min(hidden_sizes) < 1:
            raise ValueError(f"hidden_sizes must list positive sizes, got {hidden_sizes}")
        if not isinstance(reserve, int) or reserve < 1:
            raise ValueError(f"reserve must be a positive integer, got {reserve!r}")
        self._hidden_sizes = hidden_sizes
        self._reserve = reserve
        members = {f"i_spikes{index}": In(stream.Signature(spike_vector_layout(size),
                                                           always_ready=True))
                   for index, size in enumerate(hidden_sizes)}
        members.update({
            "o_events": Out(stream.Signature(debug_event_layout(hidden_sizes))),
            "o_full": Out(1),
            "o_empty": Out(1),
        })
        super().__init__(members)

    @property
    def hidden_sizes(self):
        return list(self._hidden_sizes)

    @property
    def depth(self):
        """Queue entries per layer: twice the reserve, rounded up to a power of two."""
        return 1 << ceil_log2(2 * self._reserve)

    def elaborate(self, platform):
        m = Module()
        layout = debug_event_layout(self._hidden_sizes)
        candidates, fulls, empties = [], [], []
        for index, size in enumerate(self._hidden_sizes):
            source = getattr(self, f"i_spikes{index}")
            entry = data.StructLayout({"spikes": size, "step": step_shape()})
            queue = SyncFIFOBuffered(width=entry.size, depth=self.depth)
            m.submodules[f"queue{index}"] = queue
            m.d.comb += [
                queue.w_data.eq(Cat(source.payload.spikes, source.payload.step)),
                queue.w_en.eq(source.valid & ~source.payload.start
                              & (source.payload.spikes != 0)),
            ]
            fulls.append(queue.level + self._reserve > self.depth)

            # Take the head vector apart, one spike per cycle.
            spikes = Signal(size, name=f"spikes{index}")
            step = Signal(step_shape(), name=f"step{index}")
            _, neuron = first_set(m, spikes, f"neuron{index}")
            taken = Signal(name=f"taken{index}")
            remaining = Signal(size, name=f"remaining{index}")
            m.d.comb += remaining.eq(spikes & ~(Const(1, size) << neuron))
            head = data.View(entry, queue.r_data)
            with m.If(taken):
                m.d.sync += spikes.eq(remaining)
            with m.If(((spikes == 0) | (taken & (remaining == 0))) & queue.r_rdy):
                m.d.comb += queue.r_en.eq(1)
                m.d.sync += [spikes.eq(head.spikes), step.eq(head.step)]
            empties.append((spikes == 0) & (queue.level == 0))
            event = Signal(layout, name=f"event{index}")
            m.d.comb += [event.neuron.eq(neuron), event.step.eq(step), event.layer.eq(index)]
            candidates.append((spikes != 0, event, taken))

        # Output register, loaded from the lowest layer with a spike.
        o = self.o_events
        with m.If(~o.valid | o.ready):
            m.d.sync += o.valid.eq(0)
            for valid, event, _ in reversed(candidates):
                with m.If(valid):
                    m.d.sync += [o.valid.eq(1), o.payload.eq(event)]
            # Exactly one candidate is taken: the lowest valid one.
            earlier = Const(0, 1)
            for valid, _, taken in candidates:
                m.d.comb += taken.eq(valid & ~earlier)
                earlier = earlier | valid
        m.d.comb += [
            self.o_full.eq(Cat(*fulls).any()),
            self.o_empty.eq(Cat(*empties).all() & ~o.valid),
        ]
        return m


class ChunkJoiner(wiring.Component):
    """Join a folded layer's spike chunks (``groups`` tokens of ``lanes`` neurons per step)
    into whole spike vectors, one cycle after each step's last chunk (and each start token).

    Members
    -------
    i_chunks : ``In(stream.Signature(spike_vector_layout(lanes, groups), always_ready=True))``
    o_spikes : ``Out(stream.Signature(spike_vector_layout(n_neurons), always_ready=True))``
    """

    #: Cycles from a step's last chunk to its vector.
    latency = 1

    def __init__(self, n_neurons, lanes):
        self._n_neurons, self._lanes = n_neurons, lanes
        self._groups = -(-n_neurons // lanes)
        super().__init__({
            "i_chunks": In(stream.Signature(spike_vector_layout(lanes, self._groups),
                                            always_ready=True)),
            "o_spikes": Out(stream.Signature(spike_vector_layout(n_neurons),
                                             always_ready=True)),
        })

    def elaborate(self, platform):
        m = Module()
        chunk, o = self.i_chunks.payload, self.o_spikes
        # A word for every value of the group field (lint: the write covers every case).
        joined = Signal((1 << len(chunk.group)) * self._lanes)
        with m.If(self.i_chunks.valid):
            m.d.sync += joined.word_select(chunk.group, self._lanes).eq(chunk.spikes)
        m.d.sync += [
            o.valid.eq(self.i_chunks.valid & (chunk.start | (chunk.group == self._groups - 1))),
            o.payload.step.eq(chunk.step),
            o.payload.start.eq(chunk.start),
            o.payload.end.eq(chunk.end),
            o.payload.error.eq(chunk.error),
        ]
        m.d.comb += o.payload.spikes.eq(joined[:self._n_neurons])
        return m
