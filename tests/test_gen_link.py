# amaranth: UnusedElaboratable=no
"""The serial link blocks in amaranth.sim: the CRC against ``protocol.crc16``, a UART loopback,
and the whole board core (UART pins, protocol, accelerator) against the golden model."""

import numpy as np
import pytest
from amaranth.hdl import Module, Signal

from bs4nn.gen.board import build_core
from bs4nn.gen.link import FrameReceiver, crc16_next
from bs4nn.gen.uart import UARTReceiver, UARTTransmitter
from bs4nn.model import packing, protocol
from bs4nn.sim.amaranth_harness import simulate, stream_get, stream_put
from bs4nn.sim.stimulus import ERROR_RESULT, expected_results, random_images, random_network

SEED = 7


def test_crc16_next_matches_the_protocol():
    rng = np.random.default_rng(SEED)
    crc, byte = Signal(16), Signal(8)
    m = Module()
    out = Signal(16)
    m.d.comb += out.eq(crc16_next(crc, byte))
    cases = [(int(c), int(b)) for c, b in zip(rng.integers(0, 1 << 16, 64),
                                              rng.integers(0, 256, 64), strict=True)]

    async def bench(ctx):
        for c, b in cases:
            ctx.set(crc, c)
            ctx.set(byte, b)
            assert ctx.get(out) == protocol.crc16(bytes([b]), c), (c, b)

    simulate(m, bench, clock=False)


def test_crc16_check_value():
    # The standard check value of CRC-16/CCITT-FALSE.
    assert protocol.crc16(b"123456789") == 0x29B1


@pytest.mark.parametrize("clocks_per_bit", [4, 7])
def test_uart_loopback(clocks_per_bit):
    rng = np.random.default_rng(SEED)
    sent = [int(b) for b in rng.integers(0, 256, 24)]
    m = Module()
    tx = m.submodules.tx = UARTTransmitter(clocks_per_bit)
    rx = m.submodules.rx = UARTReceiver(clocks_per_bit)
    m.d.comb += rx.i_rx.eq(tx.o_tx)
    received = []

    async def source(ctx):
        for byte in sent:
            await stream_put(ctx, tx.i_bytes, byte)

    async def sink(ctx):
        for _ in sent:
            received.append(int(await stream_get(ctx, rx.o_bytes)))

    simulate(m, source, sink)
    assert received == sent


def test_uart_parameters_are_checked():
    with pytest.raises(ValueError, match="clocks_per_bit must be an integer of at least 4, "
                                         "got 3"):
        UARTReceiver(3)
    with pytest.raises(ValueError, match="timeout_cycles must be a positive integer, got 0"):
        FrameReceiver(10, 2, 0)


def test_board_core_against_the_golden_model():
    """Good frames, a corrupted pixel, a truncated frame and noise between frames, bit by bit
    on the rx pin; the replies read from the tx pin."""
    rng = np.random.default_rng(SEED)
    network = random_network(rng, [20, 12, 6])
    images = random_images(rng, 6, network.n_inputs)
    cpb, timeout = 4, 120
    core = build_core(network, clocks_per_bit=cpb, timeout_cycles=timeout, lanes=4,
                      pixels_per_beat=4)
    frames = [protocol.image_frame(k, image) for k, image in enumerate(images)]
    corrupted = bytearray(frames[2])
    corrupted[7] ^= 0x10
    frames[2] = bytes(corrupted)
    wire = [frames[0], b"\x00\x13", frames[1], frames[2], frames[3][:9], None, *frames[4:]]
    expected = expected_results(network, images)
    statuses = [protocol.STATUS_OK] * len(images)
    statuses[2], statuses[3] = protocol.STATUS_BAD_CHECKSUM, protocol.STATUS_TRUNCATED
    decoder = protocol.ReplyDecoder(network.n_classes)
    replies = []
    simulate(core, _uart_line(core, wire, cpb, timeout),
             _uart_monitor(core, decoder, replies, len(images), cpb))
    assert [r.sequence for r in replies] == list(range(len(images)))
    assert [r.status for r in replies] == statuses
    for reply, want, status in zip(replies, expected, statuses, strict=True):
        assert reply.result == (want if status == protocol.STATUS_OK else
                                dict.fromkeys(ERROR_RESULT, 0))


def _uart_line(core, wire, cpb, timeout):
    """A testbench sending ``wire`` (byte chunks; ``None``: idle past the timeout) on ``rx``."""
    async def line(ctx):
        for chunk in wire:
            if chunk is None:
                await ctx.tick().repeat(2 * timeout)
                continue
            for byte in chunk:
                for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                    ctx.set(core.rx, bit)
                    await ctx.tick().repeat(cpb)
    return line


def _uart_monitor(core, decoder, replies, n, cpb):
    """A testbench reading ``n`` replies from ``tx`` into ``replies``."""
    async def monitor(ctx):
        while len(replies) < n:
            await ctx.tick().until(core.tx == 0)
            await ctx.tick().repeat(cpb + cpb // 2)
            byte = 0
            for k in range(8):
                byte |= ctx.get(core.tx) << k
                await ctx.tick().repeat(cpb)
            replies.extend(decoder.feed([byte]))
    return monitor


def test_board_core_loads_its_weights_over_the_link():
    """Run-time weights: images before any weights and after a corrupted or truncated weight
    frame are answered 'no weights'; after a good weight frame, with the uploaded network
    (not the one the core was built with)."""
    rng = np.random.default_rng(SEED)
    built, uploaded = (random_network(rng, [20, 12, 6]) for _ in range(2))
    images = random_images(rng, 4, built.n_inputs)
    cpb, timeout, lanes = 4, 120, 4
    core = build_core(built, clocks_per_bit=cpb, timeout_cycles=timeout, lanes=lanes,
                      pixels_per_beat=4, weight_storage="ram")
    assert core.weight_upload and core.weight_words == len(
        packing.weight_stream_beats(uploaded, lanes))
    weights = protocol.weights_frame(9, uploaded, lanes)
    assert len(weights) == protocol.weights_frame_bytes(uploaded, lanes)
    corrupted = bytearray(protocol.weights_frame(10, uploaded, lanes))
    corrupted[len(corrupted) // 2] ^= 0x04
    frames = [protocol.image_frame(k, image) for k, image in enumerate(images)]
    wire = [frames[0], bytes(corrupted), frames[1], weights, frames[2], frames[3],
            protocol.weights_frame(11, uploaded, lanes)[:40], None, frames[0]]
    ok, bad, truncated, none = (protocol.STATUS_OK, protocol.STATUS_BAD_CHECKSUM,
                                protocol.STATUS_TRUNCATED, protocol.STATUS_NO_WEIGHTS)
    wanted = [(0, none, None), (10, bad, None), (1, none, None), (9, ok, None), (2, ok, 2),
              (3, ok, 3), (11, truncated, None), (0, none, None)]
    expected = expected_results(uploaded, images)
    decoder = protocol.ReplyDecoder(built.n_classes)
    replies = []
    simulate(core, _uart_line(core, wire, cpb, timeout),
             _uart_monitor(core, decoder, replies, len(wanted), cpb))
    assert [(r.sequence, r.status) for r in replies] == [(s, c) for s, c, _ in wanted]
    for reply, (_, _, index) in zip(replies, wanted, strict=True):
        assert reply.result == (expected[index] if index is not None else
                                dict.fromkeys(ERROR_RESULT, 0))


def test_a_weight_frame_while_images_are_in_flight_is_an_overrun():
    """Weights sent straight after images: the accelerator takes weights only once idle, so
    words are lost; the frame is answered 'overrun' although it also stops short."""
    rng = np.random.default_rng(SEED + 1)
    # One lane for 64 neurons: an image takes longer to compute than to send.
    network = random_network(rng, [16, 64, 4])
    images = random_images(rng, 3, network.n_inputs, density=1.0)
    cpb, timeout, lanes = 4, 120, 1
    core = build_core(network, clocks_per_bit=cpb, timeout_cycles=timeout, lanes=lanes,
                      pixels_per_beat=4, weight_storage="ram")
    weights = protocol.weights_frame(7, network, lanes)
    frames = [protocol.image_frame(k, image) for k, image in enumerate(images)]
    wire = [*frames, weights[:2 + 16 * protocol.weight_word_bytes(network.sizes, lanes)], None,
            frames[0]]
    none = protocol.STATUS_NO_WEIGHTS
    wanted = [(0, none), (1, none), (2, none), (7, protocol.STATUS_OVERRUN), (0, none)]
    decoder = protocol.ReplyDecoder(network.n_classes)
    replies = []
    simulate(core, _uart_line(core, wire, cpb, timeout),
             _uart_monitor(core, decoder, replies, len(wanted), cpb))
    assert [(r.sequence, r.status) for r in replies] == wanted
