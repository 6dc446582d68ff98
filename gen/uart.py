"""A UART (8 data bits, no parity, 1 stop bit, LSB first) as two stream blocks: the receiver
turns the ``rx`` pin into a byte stream, the transmitter a byte stream into the ``tx`` pin."""

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["UARTReceiver", "UARTTransmitter", "MIN_CLOCKS_PER_BIT"]

#: The receiver samples each bit in its middle, found from the start bit's falling edge: with
#: fewer clocks per bit the sampling point drifts out of the bit on a real line.
MIN_CLOCKS_PER_BIT = 4


def _check_clocks_per_bit(clocks_per_bit):
    if (isinstance(clocks_per_bit, bool) or not isinstance(clocks_per_bit, int)
            or clocks_per_bit < MIN_CLOCKS_PER_BIT):
        raise ValueError(f"clocks_per_bit must be an integer of at least {MIN_CLOCKS_PER_BIT}, "
                         f"got {clocks_per_bit!r}")


class UARTReceiver(wiring.Component):
    """The ``rx`` pin to bytes.

    A byte is offered on ``o_bytes`` from the middle of its stop bit until taken; a byte that
    completes while the previous one is still offered is dropped, as is a byte whose stop bit
    is low (a framing error). The link protocol above turns lost bytes into error replies.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit on the line, at least :data:`MIN_CLOCKS_PER_BIT`.

    Members
    -------
    i_rx : ``In(1)``
        The pin, idle high; synchronized inside.
    o_bytes : ``Out(stream.Signature(8))``
    """

    def __init__(self, clocks_per_bit):
        _check_clocks_per_bit(clocks_per_bit)
        self._clocks_per_bit = clocks_per_bit
        super().__init__({"i_rx": In(1, init=1), "o_bytes": Out(stream.Signature(8))})

    @property
    def clocks_per_bit(self):
        return self._clocks_per_bit

    def elaborate(self, platform):
        m = Module()
        cpb = self._clocks_per_bit
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.i_rx, rx, init=1)
        timer = Signal(range(cpb))
        bit = Signal(range(8))
        shift = Signal(8)
        o = self.o_bytes
        with m.If(o.ready):
            m.d.sync += o.valid.eq(0)
        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(cpb // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    # A start bit still low at its middle; a glitch goes back to idle.
                    with m.If(~rx):
                        m.d.sync += [timer.eq(cpb - 1), bit.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(cpb - 1),
                                 bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx & (~o.valid | o.ready)):
                        m.d.sync += [o.valid.eq(1), o.payload.eq(shift)]
                    # Back to idle at the stop bit's middle, to catch the next start edge.
                    m.next = "IDLE"
        return m


class UARTTransmitter(wiring.Component):
    """Bytes to the ``tx`` pin: each byte taken from ``i_bytes`` is sent as start bit, 8 data
    bits (LSB first) and stop bit; the next one is taken after the stop bit.

    Parameters
    ----------
    clocks_per_bit : int
        Clock cycles per bit on the line, at least :data:`MIN_CLOCKS_PER_BIT`.

    Members
    -------
    i_bytes : ``In(stream.Signature(8))``
    o_tx : ``Out(1)``
        The pin, idle high.
    """

    def __init__(self, clocks_per_bit):
        _check_clocks_per_bit(clocks_per_bit)
        self._clocks_per_bit = clocks_per_bit
        super().__init__({"i_bytes": In(stream.Signature(8)), "o_tx": Out(1, init=1)})

    @property
    def clocks_per_bit(self):
        return self._clocks_per_bit

    def elaborate(self, platform):
        m = Module()
        cpb = self._clocks_per_bit
        timer = Signal(range(cpb))
        # Stop bit, data, start bit: shifted out LSB first; the idle line is the 1s behind.
        frame = Signal(10, init=(1 << 10) - 1)
        bits_left = Signal(range(11))
        i = self.i_bytes
        m.d.comb += [self.o_tx.eq(frame[0]), i.ready.eq(bits_left == 0)]
        with m.If(i.valid & i.ready):
            m.d.sync += [frame.eq((i.payload << 1) | (1 << 9)), bits_left.eq(10),
                         timer.eq(cpb - 1)]
        with m.Elif(bits_left != 0):
            with m.If(timer == 0):
                m.d.sync += [frame.eq((frame >> 1) | (1 << 9)), bits_left.eq(bits_left - 1),
                             timer.eq(cpb - 1)]
            with m.Else():
                m.d.sync += timer.eq(timer - 1)
        return m
