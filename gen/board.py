# amaranth: UnusedElaboratable=no
# (The board core builds its blocks in its constructor, as the Accelerator does.)
"""The accelerator on a board: :class:`BoardCore` (UART pins, link protocol, accelerator; one
clock, simulated as the Verilog module ``bs4nn_board``) and :class:`BoardTop` (the core behind
a board's oscillator, PLL, UART and LEDs, for Amaranth's platform files).

    rx → UARTReceiver → FrameReceiver ─beats→ Accelerator ─results→ ReplySender → UARTTransmitter
                              ├─words─────↗ (run-time weights)       ↑                    → tx
                              └─status→ status queue ────────────────┘
"""

from dataclasses import dataclass
from fractions import Fraction

from amaranth.back import verilog
from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..model import packing, protocol
from ..model.errors import UserError
from .build import Design
from .layouts import result_layout
from .link import FrameReceiver, ReplySender, frame_status_layout
from .top import Accelerator, check_parameters
from .uart import UARTReceiver, UARTTransmitter

__all__ = ["BoardCore", "BoardTop", "Board", "BOARDS", "check_fits", "ecp5_pll_dividers",
           "build_core", "core_parameters", "generate_board_core", "STATUS_QUEUE_DEPTH",
           "LED_COUNT"]

#: Frame statuses waiting for their results: more than the accelerator's frames in flight.
STATUS_QUEUE_DEPTH = 8
LED_COUNT = 8


class BoardCore(wiring.Component):
    """The accelerator behind a UART and the link protocol (:mod:`bs4nn.model.protocol`).

    Parameters
    ----------
    accelerator : :class:`~bs4nn.gen.top.Accelerator`
        With weights in ROM, or (any other ``weight_storage``) weights written at run time
        through its ``i_weights``: then the core takes weight frames too, and answers image
        frames only once a good one has arrived (see :mod:`bs4nn.model.protocol`).
    clocks_per_bit : int
        Clock cycles per UART bit (the clock over the baud rate).
    timeout_cycles : int
        Cycles without a byte after which a frame counts as truncated.

    Members
    -------
    rx : ``In(1)``
        UART input pin, idle high.
    tx : ``Out(1)``
        UART output pin, idle high.
    leds : ``Out(8)``
        The last reply: its class in the low bits (``packing.class_width``; 0 after a weight
        frame's reply), bit 6 toggles at every reply, bit 7 is set when it was an error reply;
        with run-time weights, bit 5 is the *weights good* flag.
    """

    def __init__(self, accelerator, *, clocks_per_bit, timeout_cycles):
        if not isinstance(accelerator, Accelerator):
            raise TypeError(f"accelerator must be an Accelerator, got {accelerator!r}")
        network = accelerator.network
        self.accelerator = accelerator
        self._uart_rx = UARTReceiver(clocks_per_bit)
        self._uart_tx = UARTTransmitter(clocks_per_bit)
        weights = {}
        if self.weight_upload:
            weights = {"weight_fields": accelerator.weight_fields,
                       "weight_words": len(packing.weight_stream_beats(
                           network, accelerator.lanes, accelerator.events_per_cycle))}
        self._receiver = FrameReceiver(network.n_inputs, accelerator.pixels_per_beat,
                                       timeout_cycles, **weights)
        self._sender = ReplySender(network.n_classes)
        super().__init__({"rx": In(1, init=1), "tx": Out(1, init=1), "leds": Out(LED_COUNT)})

    @property
    def clocks_per_bit(self):
        return self._uart_rx.clocks_per_bit

    @property
    def timeout_cycles(self):
        return self._receiver.timeout_cycles

    @property
    def weight_upload(self):
        """Whether the core takes weight frames: every ``weight_storage`` but ``"rom"``."""
        return self.accelerator.weight_storage != "rom"

    @property
    def weight_words(self):
        """Words in a weight frame (0 without weight upload)."""
        return self._receiver.weight_words

    def elaborate(self, platform):
        m = Module()
        uart_rx = m.submodules.uart_rx = self._uart_rx
        uart_tx = m.submodules.uart_tx = self._uart_tx
        receiver = m.submodules.image_receiver = self._receiver
        sender = m.submodules.reply_sender = self._sender
        core = m.submodules.accelerator = self.accelerator
        statuses = m.submodules.status_queue = SyncFIFO(
            width=frame_status_layout().size, depth=STATUS_QUEUE_DEPTH)

        m.d.comb += [uart_rx.i_rx.eq(self.rx), self.tx.eq(uart_tx.o_tx)]
        wiring.connect(m, uart_rx.o_bytes, receiver.i_bytes)
        wiring.connect(m, receiver.o_beats, core.i_pixels)
        if self.weight_upload:
            wiring.connect(m, receiver.o_words, core.i_weights)
            m.d.comb += self.leds[5].eq(receiver.o_weights_good)
        wiring.connect(m, core.o_results, sender.i_results)
        wiring.connect(m, sender.o_bytes, uart_tx.i_bytes)
        # The FIFO's streams carry plain bits, the status stream a layout: joined by hand.
        m.d.comb += [
            statuses.w_data.eq(receiver.o_status.payload),
            statuses.w_en.eq(receiver.o_status.valid),
            receiver.o_status.ready.eq(statuses.w_rdy),
            sender.i_status.valid.eq(statuses.r_rdy),
            sender.i_status.payload.eq(statuses.r_data),
            statuses.r_en.eq(sender.i_status.ready),
        ]

        results, status = sender.i_results, sender.i_status
        width = packing.class_width(self.accelerator.network.n_classes)
        with m.If(status.valid & status.ready):
            ok = status.payload.status == protocol.STATUS_OK
            shown = ok & ~status.payload.weights
            m.d.sync += [self.leds[:width].eq(results.payload.predicted & shown.replicate(width)),
                         self.leds[6].eq(~self.leds[6]), self.leds[7].eq(~ok)]
        return m


# --- boards ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Board:
    """A board the accelerator is built for: its Amaranth platform, clocks and UART."""

    name: str
    platform: str
    family: str
    oscillator_hz: int
    clock_hz: int
    baud: int
    programmer: str
    #: Weight ROM bits the FPGA's block RAM holds.
    block_ram_bits: int
    leds: int
    #: Where the board build keeps its weights (``Accelerator`` ``weight_storage``); every value
    #: but ``"rom"`` loads them over the link after power-up (``bs4nn board run`` sends them).
    weight_storage: str = "rom"
    #: The accelerator's LANES and pixels per beat on this board.
    lanes: int = 0
    pixels_per_beat: int = 8

    @property
    def clocks_per_bit(self):
        return self.clock_hz // self.baud

    def make_platform(self):
        import amaranth_boards.icebreaker
        import amaranth_boards.ulx3s

        modules = {"ULX3S_85F_Platform": amaranth_boards.ulx3s,
                   "ICEBreakerPlatform": amaranth_boards.icebreaker}
        return getattr(modules[self.platform], self.platform)()


#: The ULX3S runs at 30 MHz, so that its FT231X's fastest rate, 3 Mbaud, is exactly 10 clocks
#: per bit; the accelerator meets timing well above that (``make bitstream`` checks it). The
#: iCEBreaker runs on its 12 MHz oscillator at 1 Mbaud.
BOARDS = {
    "ulx3s-85f": Board("ulx3s-85f", "ULX3S_85F_Platform", "ecp5", 25_000_000, 30_000_000,
                       3_000_000, "openFPGALoader -b ulx3s", 208 * 18 * 1024, 8),
    # The UP5K: the first layer's columns in SPRAM (loaded over the link), folded at 8 lanes
    # (its counters, the step lists and the output layer's weights fit the 30 EBR), the
    # compact scheduler at one pixel per beat.
    "icebreaker": Board("icebreaker", "ICEBreakerPlatform", "ice40", 12_000_000, 12_000_000,
                        1_000_000, "iceprog", 30 * 4096, 2, weight_storage="spram", lanes=8,
                        pixels_per_beat=1),
}

#: A frame that stops for this long is closed as truncated (USB-serial bridges send in
#: packets: gaps of a millisecond or two inside a frame are normal).
BOARD_TIMEOUT_S = 0.02


def check_fits(board, network):
    """Raise :class:`UserError` with one line when ``network``'s accelerator cannot be built for
    ``board``: a weight ROM larger than its block RAM (the SPRAM's limit is checked with the
    generator's parameters)."""
    rom_bits = network.n_inputs * network.layers[0].n_out
    if board.weight_storage == "rom" and rom_bits > board.block_ram_bits:
        raise UserError(f"{board.name}: the {network.describe()} network's first-layer weights "
                        f"({rom_bits:,} bits) exceed its block RAM "
                        f"({board.block_ram_bits:,} bits)")


def ecp5_pll_dividers(input_hz, output_hz):
    """``(CLKI_DIV, CLKFB_DIV, CLKOP_DIV)`` of an ECP5 EHXPLLL that makes exactly ``output_hz``
    from ``input_hz`` (phase detector 3.125-400 MHz, VCO 400-800 MHz)."""
    for clki in range(1, 129):
        ratio = Fraction(output_hz, input_hz) * clki
        if ratio.denominator != 1 or not 1 <= ratio <= 80:
            continue
        if not 3_125_000 <= input_hz / clki <= 400_000_000:
            continue
        for clkop in range(1, 129):
            if 400e6 <= output_hz * clkop <= 800e6:
                return clki, int(ratio), clkop
    raise UserError(f"no EHXPLLL setting makes {output_hz / 1e6:g} MHz from "
                    f"{input_hz / 1e6:g} MHz exactly")


class BoardTop(Elaboratable):
    """:class:`BoardCore` on a board: oscillator (through a PLL where the clock differs),
    reset held until the PLL locks, UART pins and LEDs."""

    def __init__(self, board, core):
        self.board = board
        self.core = core

    def elaborate(self, platform):
        m = Module()
        board = self.board
        oscillator = platform.request(platform.default_clk, 0)
        m.domains.sync = ClockDomain("sync")
        locked = Signal(init=1)
        if board.clock_hz == board.oscillator_hz:
            m.d.comb += ClockSignal("sync").eq(oscillator.i)
        else:
            if board.family != "ecp5":
                raise UserError(f"{board.name}: no PLL for the {board.family} family here")
            clki, clkfb, clkop = ecp5_pll_dividers(board.oscillator_hz, board.clock_hz)
            clock = Signal()
            locked = Signal()
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{board.oscillator_hz / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{board.clock_hz / 1e6:g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
                a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD", p_CLKI_DIV=clki,
                p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=clkop, p_CLKOP_CPHASE=(clkop - 1) // 2,
                p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=clkfb,
                i_RST=0, i_STDBY=0, i_CLKI=oscillator.i, o_CLKOP=clock, i_CLKFB=clock,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
            # nextpnr derives the output's constraint from the oscillator's and the dividers.
            m.d.comb += ClockSignal("sync").eq(clock)
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

        core = m.submodules.core = self.core
        uart = platform.request("uart", 0)
        m.d.comb += [core.rx.eq(uart.rx.i), uart.tx.o.eq(core.tx)]
        for k in range(board.leds):
            led = platform.request("led", k)
            # With fewer LEDs than the core drives: the error and reply-toggle bits first.
            bit = k if board.leds == LED_COUNT else (7, 6)[k]
            m.d.comb += led.o.eq(core.leds[bit])
        return m


def build_core(network, *, clocks_per_bit, timeout_cycles, lanes=0, pixels_per_beat=8,
               events_per_cycle=1, weight_storage="rom"):
    """A :class:`BoardCore` for ``network`` (parameters checked first)."""
    check_parameters(network, lanes, pixels_per_beat, weight_storage,
                     events_per_cycle=events_per_cycle)
    for name, value in (("clocks_per_bit", clocks_per_bit), ("timeout_cycles", timeout_cycles)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise UserError(f"{name} must be a positive integer, got {value!r}")
    # The board's link blocks are the accelerator's neighbours on the chip, in its clock: its
    # ports need no register slices (and the UP5K build has no logic cells to spare).
    accelerator = Accelerator(network, lanes=lanes, pixels_per_beat=pixels_per_beat,
                              events_per_cycle=events_per_cycle, weight_storage=weight_storage,
                              pipelined=False)
    return BoardCore(accelerator, clocks_per_bit=clocks_per_bit, timeout_cycles=timeout_cycles)


def core_parameters(core):
    """The generator parameters of a :class:`BoardCore`, as its design description (and a board
    build's ``summary.json``) lists them: what the host needs to talk to it."""
    accelerator = core.accelerator
    network = accelerator.network
    return {"lanes": accelerator.lanes, "pixels_per_beat": accelerator.pixels_per_beat,
            "events_per_cycle": accelerator.events_per_cycle,
            "weight_storage": accelerator.weight_storage, "debug_events": False,
            "sizes": network.sizes, "n_inputs": network.n_inputs,
            "n_classes": network.n_classes}


def generate_board_core(network, *, clocks_per_bit, timeout_cycles, lanes=0, pixels_per_beat=8,
                        events_per_cycle=1, weight_storage="rom"):
    """The Verilog module ``bs4nn_board`` (ports ``clk``, ``rst``, ``rx``, ``tx``, ``leds``)
    of :class:`BoardCore`, with its description: a :class:`~bs4nn.gen.build.Design`."""
    core = build_core(network, clocks_per_bit=clocks_per_bit, timeout_cycles=timeout_cycles,
                      lanes=lanes, pixels_per_beat=pixels_per_beat,
                      events_per_cycle=events_per_cycle, weight_storage=weight_storage)
    text = verilog.convert(core, name="bs4nn_board", emit_src=False)
    accelerator = core.accelerator
    info = {
        "module": "bs4nn_board",
        "network": network.describe(),
        "parameters": core_parameters(core),
        "link": {"clocks_per_bit": clocks_per_bit, "timeout_cycles": timeout_cycles,
                 "status_queue_depth": STATUS_QUEUE_DEPTH,
                 "result_layout_bits": result_layout(network.n_classes).size,
                 "weight_words": core.weight_words},
        "schedule": accelerator.schedule.as_dict(),
    }
    return Design(text, info)
