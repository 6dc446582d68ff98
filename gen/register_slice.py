"""A stream register slice: every output of a stream hop from a flip-flop."""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["RegisterSlice"]


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
        held = Signal()                                   # the skid register is full
        skid = Signal(self._shape, reset_less=True)
        payload = Signal(self._shape, reset_less=True)
        # ``i.ready`` is its own register, low in reset and in the cycle after it, so that
        # nothing is taken while the design behind the slice is being reset. No register's
        # enable depends on ``i.valid``: the skid register follows ``i.payload`` while empty,
        # so the port's wires go into flip-flops through one multiplexer at most.
        m.d.comb += self.o.payload.eq(payload)
        with m.If(~held):
            m.d.sync += skid.eq(self.i.payload)
        with m.If(~self.o.valid | self.o.ready):
            m.d.sync += [
                payload.eq(Mux(held, skid, self.i.payload)),
                self.o.valid.eq(held | (self.i.valid & self.i.ready)),
                held.eq(0),
                self.i.ready.eq(1),
            ]
        with m.Elif(self.i.valid & self.i.ready):
            m.d.sync += [held.eq(1), self.i.ready.eq(0)]
        return m
