"""cocotb system test of the board core ``bs4nn_board`` (``bs4nn.gen.board.BoardCore``: UART
pins, link protocol, accelerator; the clock driven directly, as the PLL would), and its pytest
wrapper.

Image frames come from ``bs4nn.model.protocol.image_frame`` (the host program's encoder) and
go onto the ``rx`` pin bit by bit; the ``tx`` pin is read bit by bit into
``protocol.ReplyDecoder`` (the host program's decoder). Every reply is checked against the
golden model (``bs4nn.model.inference.infer``): good frames give their image's result, a
frame with a corrupted byte or cut short gives an error reply with a zero result, and the
frame after each bad one is answered correctly. The test ends by asserting that nothing else
came out of ``tx``. ``board_weights`` (a core with run-time weights) sends weight frames from
``protocol.weights_frame``: images before good weights, and after a corrupted weight frame, are
answered "no weights"; after a good one, with the uploaded network, not the one the core was
built with. ``board_host`` runs the host program itself against the core (for run-time weights
it sends the weight frame first).
"""

import os
import subprocess
import sys
import time

import cocotb
import numpy as np
import pytest
from bs4nn_tb import PERIOD_NS, load_environment, record_summary
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge, with_timeout

from bs4nn.model import protocol
from bs4nn.sim.stimulus import ERROR_RESULT, expected_results, random_images, random_network


class UARTLine:
    """Drives a UART input pin (8N1, LSB first) and reads a UART output pin, in clock cycles."""

    def __init__(self, clock, rx, tx, clocks_per_bit):
        self.clock, self.rx, self.tx = clock, rx, tx
        self.clocks_per_bit = clocks_per_bit
        self.rx.value = 1

    async def send(self, data):
        for byte in data:
            for bit in [0, *((byte >> k) & 1 for k in range(8)), 1]:
                self.rx.value = bit
                await ClockCycles(self.clock, self.clocks_per_bit)

    async def receive(self, on_byte):
        """Forever: each byte from ``tx`` to ``on_byte``; a low stop bit fails the test."""
        cpb = self.clocks_per_bit
        while True:
            await FallingEdge(self.tx)
            await ClockCycles(self.clock, cpb + cpb // 2)
            byte = 0
            for k in range(8):
                byte |= int(self.tx.value) << k
                await ClockCycles(self.clock, cpb)
            assert int(self.tx.value) == 1, "tx: stop bit low"
            on_byte(byte)


def _cases(images, rng):
    """The byte chunks to send (``None``: the line idles past the timeout) and the expected
    ``(sequence, status)`` of each reply, with the index of the image whose result it carries
    (``None`` for an error reply)."""
    chunks, expected = [b"\x00\x13\xff"], []  # noise before the first frame: skipped
    bad = {1: "pixel", 3: "checksum", 5: "truncated pixels", 7: "truncated checksum"}
    for index, image in enumerate(images):
        sequence = index % 256
        frame = bytearray(protocol.image_frame(sequence, image))
        kind = bad.get(index)
        if kind == "pixel":
            frame[2 + int(rng.integers(len(image)))] ^= 1 << int(rng.integers(8))
        elif kind == "checksum":
            frame[-1] ^= 0x80
        elif kind == "truncated pixels":
            frame = frame[:2 + int(rng.integers(len(image)))]
        elif kind == "truncated checksum":
            frame = frame[:-1]
        chunks.append(bytes(frame))
        if kind is not None and kind.startswith("truncated"):
            chunks.append(None)
        status = {None: protocol.STATUS_OK, "pixel": protocol.STATUS_BAD_CHECKSUM,
                  "checksum": protocol.STATUS_BAD_CHECKSUM}.get(kind, protocol.STATUS_TRUNCATED)
        expected.append((sequence, status, index if status == protocol.STATUS_OK else None))
    return chunks, expected, sum(index < len(images) for index in bad)


async def _start(dut, clocks_per_bit):
    """Start the clock, reset the core; returns the :class:`UARTLine` on its pins."""
    cocotb.start_soon(Clock(dut.clk, PERIOD_NS, unit="ns").start())
    line = UARTLine(dut.clk, dut.rx, dut.tx, clocks_per_bit)
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    return line


@cocotb.test()
async def board_link(dut):
    """MNIST images over the UART, with corrupted and truncated frames among them."""
    from bs4nn.model import data

    env = load_environment()
    link = env.design["info"]["link"]
    cpb, timeout = link["clocks_per_bit"], link["timeout_cycles"]
    n = env.n or 8
    rng = np.random.default_rng(env.seed)
    dataset = env.network.metadata.get("dataset", "mnist")
    images, labels = data.load(dataset, "test")
    images, labels = images[:n], labels[:n]
    chunks, expected, n_bad = _cases(images, rng)
    results = expected_results(env.network, images)
    cocotb.log.info(f"board_link: seed {env.seed}, {n} images ({n_bad} of them spoiled), "
                    f"{cpb} clocks per bit, timeout {timeout} cycles")

    line = await _start(dut, cpb)
    replies, decoder, wall = await _exchange(dut, env, line, chunks, len(expected))

    errors = []
    for k, (reply, (sequence, status, index)) in enumerate(zip(replies, expected, strict=False)):
        want = results[index] if index is not None else dict.fromkeys(ERROR_RESULT, 0)
        if (reply.sequence, reply.status, reply.result) != (sequence, status, want):
            errors.append(f"reply {k}: got seq {reply.sequence} "
                          f"{protocol.STATUS_NAMES.get(reply.status)} {reply.result}, "
                          f"expected seq {sequence} {protocol.STATUS_NAMES[status]} {want}")
    for message in errors[:10]:
        cocotb.log.error(message)
    good = [index for _, _, index in expected if index is not None]
    correct = sum(results[index]["predicted"] == labels[index] for index in good)
    record_summary(env, (
        f"board_link: {len(expected) - len(errors)}/{len(expected)} replies == model over the "
        f"UART ({len(good)} images, {correct} classified right; {n_bad} corrupted or truncated "
        f"frames answered as errors), {cpb} clocks per bit, {wall:.1f} s, seed {env.seed}"))
    assert not errors, f"{len(errors)} replies differ"
    assert len(replies) == len(expected), f"{len(replies)} replies for {len(expected)} frames"
    assert decoder.discarded == 0 and not decoder.buffer, (
        f"stray bytes on tx: {decoder.discarded} discarded, {len(decoder.buffer)} left")


async def _exchange(dut, env, line, chunks, n_replies, extra_cycles=0):
    """Send ``chunks`` on ``rx`` (``None``: idle past the timeout) and collect ``n_replies``
    replies from ``tx``, then wait to see that nothing else comes. Returns the replies, the
    decoder and the wall time."""
    link = env.design["info"]["link"]
    cpb, timeout = link["clocks_per_bit"], link["timeout_cycles"]
    decoder = protocol.ReplyDecoder(env.network.n_classes)
    replies = []

    def on_byte(byte):
        replies.extend(decoder.feed([byte]))

    receiver = cocotb.start_soon(line.receive(on_byte))
    started = time.perf_counter()
    for chunk in chunks:
        if chunk is None:
            await ClockCycles(dut.clk, 2 * timeout)
        else:
            await line.send(chunk)
    reply_cycles = 10 * cpb * protocol.reply_frame_bytes(env.network.n_classes)

    async def all_replies():
        while len(replies) < n_replies:
            await ClockCycles(dut.clk, reply_cycles)

    await with_timeout(all_replies(), (20 * reply_cycles + 100_000 + extra_cycles) * PERIOD_NS,
                       "ns")
    await ClockCycles(dut.clk, 4 * reply_cycles)  # nothing else may come
    receiver.cancel()
    return replies, decoder, time.perf_counter() - started


@cocotb.test()
async def board_weights(dut):
    """Run-time weights over the UART: none at power-up, a corrupted weight frame, a good one,
    then random images checked against the golden model of the uploaded network."""
    env = load_environment()
    parameters = env.design["info"]["parameters"]
    if parameters["weight_storage"] == "rom":
        cocotb.log.info("board_weights: the core keeps its weights in ROM; nothing to upload")
        return
    lanes, events = parameters["lanes"], parameters["events_per_cycle"]
    cpb = env.design["info"]["link"]["clocks_per_bit"]
    n = env.n or 4
    rng = np.random.default_rng(env.seed)
    uploaded = random_network(rng, env.network.sizes)
    images = random_images(rng, n, env.network.n_inputs)
    weights = protocol.weights_frame(1, uploaded, lanes, events)
    corrupted = bytearray(protocol.weights_frame(2, uploaded, lanes, events))
    spoiled = 2 + int(rng.integers(len(corrupted) - 4))
    corrupted[spoiled] ^= 1 << int(rng.integers(8))
    frames = [protocol.image_frame(k, image) for k, image in enumerate(images)]
    # Image 0 before any weights, image 1 after the corrupted weight frame: no weights.
    chunks = [frames[0], bytes(corrupted), frames[1 % n], weights, *frames[2:]]
    none, ok = protocol.STATUS_NO_WEIGHTS, protocol.STATUS_OK
    expected = [(0, none, None), (2, protocol.STATUS_BAD_CHECKSUM, None), (1 % n, none, None),
                (1, ok, None), *((k, ok, k) for k in range(2, n))]
    results = expected_results(uploaded, images)
    cocotb.log.info(f"board_weights: seed {env.seed}, {env.network.describe()} uploaded as "
                    f"{len(weights):,}-byte weight frames (byte {spoiled} spoiled in one), "
                    f"{n} images, {cpb} clocks per bit")

    line = await _start(dut, cpb)
    frame_cycles = 10 * cpb * len(weights)
    replies, decoder, wall = await _exchange(dut, env, line, chunks, len(expected),
                                             extra_cycles=2 * frame_cycles)
    errors = []
    for k, (reply, (sequence, status, index)) in enumerate(zip(replies, expected, strict=False)):
        want = results[index] if index is not None else dict.fromkeys(ERROR_RESULT, 0)
        if (reply.sequence, reply.status, reply.result) != (sequence, status, want):
            errors.append(f"reply {k}: got seq {reply.sequence} "
                          f"{protocol.STATUS_NAMES.get(reply.status)} {reply.result}, "
                          f"expected seq {sequence} {protocol.STATUS_NAMES[status]} {want}")
    for message in errors[:10]:
        cocotb.log.error(message)
    built = expected_results(env.network, images)
    differ = sum(results[k] != built[k] for k in range(2, n))
    record_summary(env, (
        f"board_weights: {len(expected) - len(errors)}/{len(expected)} replies as expected "
        f"over the UART (a corrupted weight frame answered 'bad checksum', images before good "
        f"weights 'no weights', {n - 2} images == the uploaded network's model, {differ} of "
        f"them differing from the built-in network's), {wall:.1f} s, seed {env.seed}"))
    assert not errors, f"{len(errors)} replies differ"
    assert len(replies) == len(expected), f"{len(replies)} replies for {len(expected)} frames"
    assert decoder.discarded == 0 and not decoder.buffer, (
        f"stray bytes on tx: {decoder.discarded} discarded, {len(decoder.buffer)} left")


@cocotb.test()
async def board_host(dut):
    """``bs4nn board run`` itself, in a subprocess, on a pseudo-terminal whose other end is the
    core's UART pins: the host program's serial loop against the RTL."""
    env = load_environment()
    cpb = env.design["info"]["link"]["clocks_per_bit"]
    n = env.n or 3
    line = await _start(dut, cpb)
    master, slave = os.openpty()
    os.set_blocking(master, False)
    command = [sys.executable, "-m", "bs4nn.cli", "board", "run", "--port", os.ttyname(slave),
               "--weights", str(os.environ["BS4NN_NETWORK"]), "--n", str(n),
               "--design", str(os.environ["BS4NN_DESIGN"]), "--reply-timeout", "600"]
    host = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    cocotb.start_soon(line.receive(lambda byte: os.write(master, bytes([byte]))))
    while host.poll() is None:
        try:
            data = os.read(master, 4096)
        except BlockingIOError:
            data = b""
        if data:
            await line.send(data)
        else:
            await ClockCycles(dut.clk, 200)
    output = host.stdout.read()
    os.close(master)
    os.close(slave)
    cocotb.log.info(output)
    record_summary(env, f"board_host: bs4nn board run over a pty to the RTL, exit status "
                        f"{host.returncode}: " + " / ".join(
                            text.strip() for text in output.strip().splitlines()[1:]))
    assert host.returncode == 0, output
    assert f"agreement with the golden model: {n}/{n}" in output, output


# --- pytest wrapper ---------------------------------------------------------------------------

#: The run-time weights build: a small random network, its first layer folded.
WEIGHTS_SIZES = (40, 24, 10)
WEIGHTS_LANES = 8
#: The shipped network's builds, folded: the link and its protocol do not depend on the lanes
#: (the accelerator's tests cover every LANES), and these tests spend most of their cycles on
#: UART bits, each of which Verilator simulates about ten times faster than at all 600 lanes
#: (board_link: 143 s against 1,483 s, under load).
ROM_LANES = 16


@pytest.mark.rtlsim
@pytest.mark.xdist_group("verilator-board")
@pytest.mark.parametrize(("name", "n", "weight_storage"),
                         [("board_link", 8, "rom"), ("board_host", 2, "rom"),
                          ("board_weights", 4, "ram"), ("board_weights", 3, "spram")])
def test_board(name, n, weight_storage, require_tool):
    from bs4nn.model.network import DEFAULT_WEIGHTS, Network
    from bs4nn.sim import runner

    require_tool("verilator")
    if weight_storage == "rom":
        network, weights, lanes = Network.load(DEFAULT_WEIGHTS), DEFAULT_WEIGHTS, ROM_LANES
    else:
        network = random_network(np.random.default_rng(14), WEIGHTS_SIZES)
        weights, lanes = None, WEIGHTS_LANES
    # spram: the iCEBreaker's configuration (SB_SPRAM256KA, one pixel per beat, compact).
    config = runner.SimConfig(quick_build=True, board_clocks_per_bit=runner.BOARD_CLOCKS_PER_BIT,
                              lanes=lanes, weight_storage=weight_storage,
                              pixels_per_beat=1 if weight_storage == "spram" else 8)
    build = runner.prepare_build(network, config, weights=weights,
                                 build_root=runner.REPO / "build" / "sim", log=lambda _: None)
    seed = int(np.random.default_rng().integers(1 << 31))
    outcome = runner.run_test(build, name, seed=seed, n=n, quiet=True)
    lines = "\n".join(outcome.summary.get("lines", []))
    assert outcome.passed, (f"{name} (seed {seed}): {outcome.failed}/{outcome.tests} failed; "
                            f"see {outcome.directory / 'sim.log'}\n{lines}")
