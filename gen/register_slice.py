"""A stream register slice: every output of a stream hop from a flip-flop."""

from amaranth.hdl import Module, Mux, Shape, Signal, Value
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .replicas import replicated_register

__all__ = ["RegisterSlice", "PipelineRegister"]

#: Payload bits per copy of the skid flag.
BITS_PER_COPY = 16


class RegisterSlice(wiring.Component):
    """Passes a stream on one cycle later, with ``i.ready``, ``o.valid`` and ``o.payload``
    all driven by registers, so no combinational path crosses it: put at a port, the IP meets
    the clock of any registered neighbour.

    Two entries: the output register, and a skid register that catches the beat accepted in
    a cycle where ``o`` stalls (``i.ready`` is registered, so it only falls in the next
    cycle). So it passes one beat per cycle, and a stall costs no bubble.

    Parameters
    ----------
    shape : shape-castable
        The payload.

    Members
    -------
    i : ``In(stream.Signature(shape))``
    o : ``Out(stream.Signature(shape))``
    """

    #: Cycles from a beat's transfer on ``i`` to the first cycle it is offered on ``o``.
    latency = 1
    #: Beats held at most.
    entries = 2

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    def elaborate(self, platform):
        m = Module()
        width = Shape.cast(self._shape).width
        # The skid register is full. Each slice of ``BITS_PER_COPY`` bits has its own copy
        # of this flag (:mod:`.replicas`): the data registers sit by the port's pins, which
        # may be spread over the die.
        held_next = Signal()
        held_copies = replicated_register(m, held_next, -(-width // BITS_PER_COPY), "held")
        held = held_copies[0]
        skid = Signal(width, reset_less=True)
        payload = Signal(width, reset_less=True)
        incoming = Value.cast(self.i.payload)
        # ``i.ready`` is its own register, low in reset and in the cycle after it, so that
        # nothing is taken while the design behind the slice is being reset. No register's
        # enable depends on ``i.valid``: the skid register follows ``i.payload`` while empty,
        # so the port's wires go into flip-flops through one multiplexer at most.
        m.d.comb += [self.o.payload.eq(payload), held_next.eq(held)]
        load = ~self.o.valid | self.o.ready
        for k, held_copy in enumerate(held_copies):
            bits = slice(k * BITS_PER_COPY, min(width, (k + 1) * BITS_PER_COPY))
            with m.If(~held_copy):
                m.d.sync += skid[bits].eq(incoming[bits])
            with m.If(load):
                m.d.sync += payload[bits].eq(Mux(held_copy, skid[bits], incoming[bits]))
        with m.If(load):
            m.d.comb += held_next.eq(0)
            m.d.sync += [
                self.o.valid.eq(held | (self.i.valid & self.i.ready)),
                self.i.ready.eq(1),
            ]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.comb += held_next.eq(1)
            m.d.sync += self.i.ready.eq(0)
        return m


class PipelineRegister(wiring.Component):
    """An always-ready stream one cycle later: a register on a long hop (a wide spike vector
    from lanes spread over the die), so that each end of the hop sits by its own logic.

    Parameters
    ----------
    shape : shape-castable
        The payload.

    Members
    -------
    i : ``In(stream.Signature(shape, always_ready=True))``
    o : ``Out(stream.Signature(shape, always_ready=True))``
    """

    #: Cycles from ``i`` to ``o``.
    latency = 1

    def __init__(self, shape):
        super().__init__({"i": In(stream.Signature(shape, always_ready=True)),
                          "o": Out(stream.Signature(shape, always_ready=True))})

    def elaborate(self, platform):
        m = Module()
        payload = Signal.like(self.o.payload, reset_less=True)   # data: `valid` qualifies it
        m.d.sync += [self.o.valid.eq(self.i.valid), payload.eq(self.i.payload)]
        m.d.comb += self.o.payload.eq(payload)
        return m
