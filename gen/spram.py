"""A single-port memory built from the iCE40UP5K's SB_SPRAM256KA blocks (16 K words of 16 bits
each, four on the chip, no initial contents)."""

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

__all__ = ["Spram", "SPRAM_BLOCKS", "SPRAM_DEPTH", "SPRAM_WIDTH", "spram_blocks"]

#: SB_SPRAM256KA blocks of an iCE40UP5K.
SPRAM_BLOCKS = 4
SPRAM_DEPTH = 1 << 14
SPRAM_WIDTH = 16


def spram_blocks(width, depth):
    """SB_SPRAM256KA blocks that hold ``depth`` words of ``width`` bits."""
    return -(-width // SPRAM_WIDTH) * -(-depth // SPRAM_DEPTH)


class Spram(wiring.Component):
    """``depth`` words of ``width`` bits in SB_SPRAM256KA blocks, side by side for the width
    and stacked for the depth. One port: a cycle either writes (``write_en``) or reads
    ``addr``, whose word is on ``read_data`` in the next cycle (after a write it has no
    meaning until the next read).

    Members
    -------
    addr : ``In(range(depth))``
    read_data : ``Out(width)``
    write_data : ``In(width)``
    write_en : ``In(1)``
    """

    def __init__(self, width, depth):
        # The user-facing check is the generator's (``top.check_parameters``).
        if spram_blocks(width, depth) > SPRAM_BLOCKS:
            raise ValueError(f"{depth:,} words of {width} bits need more than {SPRAM_BLOCKS} "
                             f"SB_SPRAM256KA blocks")
        self._width, self._depth = width, depth
        super().__init__({
            "addr": In(max(1, ceil_log2(depth))),
            "read_data": Out(width),
            "write_data": In(width),
            "write_en": In(1),
        })

    def elaborate(self, platform):
        m = Module()
        n_wide = -(-self._width // SPRAM_WIDTH)
        n_deep = -(-self._depth // SPRAM_DEPTH)
        padded = Cat(self.write_data, Const(0, n_wide * SPRAM_WIDTH - self._width))
        row_addr = self.addr[:14]
        high = self.addr[14:]
        read_high = Signal.like(high) if len(high) else None
        if read_high is not None:
            m.d.sync += read_high.eq(high)
        rows = []
        for d in range(n_deep):
            selected = (high == d) if len(high) else Const(1, 1)
            words = []
            for w in range(n_wide):
                out = Signal(SPRAM_WIDTH, name=f"out{d}_{w}")
                m.submodules[f"block{d}_{w}"] = Instance(
                    "SB_SPRAM256KA",
                    i_ADDRESS=Cat(row_addr, Const(0, 14 - len(row_addr))),
                    i_DATAIN=padded[w * SPRAM_WIDTH:(w + 1) * SPRAM_WIDTH],
                    i_MASKWREN=Const(0b1111, 4),
                    i_WREN=self.write_en & selected,
                    i_CHIPSELECT=Const(1, 1),
                    i_CLOCK=ClockSignal("sync"),
                    i_STANDBY=Const(0, 1),
                    i_SLEEP=Const(0, 1),
                    i_POWEROFF=Const(1, 1),
                    o_DATAOUT=out)
                words.append(out)
            rows.append(Cat(*words))
        data = rows[0]
        for d in range(1, n_deep):
            data = Mux(read_high == d, rows[d], data)
        m.d.comb += self.read_data.eq(data[:self._width])
        return m
