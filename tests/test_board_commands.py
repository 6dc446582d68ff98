"""The board commands' one-line errors, and the link protocol's host side."""

import numpy as np
import pytest

from bs4nn.cli import main
from bs4nn.model import protocol
from bs4nn.sim.stimulus import ERROR_RESULT


def test_a_network_too_big_for_the_spram_is_refused_on_the_icebreaker(capsys):
    # The Fashion-MNIST network's first layer, 8 lanes wide: 98,000 words, six SPRAM blocks.
    assert main(["bitstream", "--board", "icebreaker", "--weights",
                 "weights/fashion-mnist-784-1000-10.npz"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["bs4nn bitstream: error: weight_storage='spram': the first layer's 98,000 "
                   "words of 8 bits (lanes=8) need 6 SB_SPRAM256KA blocks; the iCE40UP5K has 4"]


def test_board_run_without_a_board_is_one_line(tmp_path, capsys):
    port = tmp_path / "ttyUSB9"
    assert main(["board", "run", "--port", str(port), "--n", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"bs4nn board: error: {port}: cannot open the "
                                               f"serial port")


def test_board_run_checks_n(capsys):
    assert main(["board", "run", "--port", "/dev/null", "--n", "20000"]) == 1
    assert capsys.readouterr().err.strip() == ("bs4nn board: error: --n 20000: the mnist test "
                                               "split has 10000 images")


def test_image_frame_layout():
    pixels = np.arange(784) % 256
    frame = protocol.image_frame(7, pixels)
    assert len(frame) == protocol.image_frame_bytes(784) == 788
    assert frame[:2] == bytes([protocol.IMAGE_SYNC, 7])
    assert frame[2:-2] == bytes(pixels.astype(np.uint8))
    assert int.from_bytes(frame[-2:], "little") == protocol.crc16(frame[1:-2])


def test_reply_decoder_skips_noise_and_corrupted_replies():
    result = {"predicted": 9, "decision_step": 256, "fired": 0, "error": 0}
    good = protocol.reply_frame(10, 3, protocol.STATUS_OK, result)
    error = protocol.reply_frame(10, 4, protocol.STATUS_TRUNCATED)
    spoiled = bytearray(good)
    spoiled[3] ^= 1
    decoder = protocol.ReplyDecoder(10)
    stream = b"\x00\x5a\x01" + bytes(spoiled) + good + error
    replies = [reply for k in range(0, len(stream), 3) for reply in
               decoder.feed(stream[k:k + 3])]
    assert [(r.sequence, r.status, r.result) for r in replies] == [
        (3, protocol.STATUS_OK, result),
        (4, protocol.STATUS_TRUNCATED, dict.fromkeys(ERROR_RESULT, 0))]
    assert not decoder.buffer


@pytest.mark.parametrize(("baud", "expected"), [(3_000_000, 380.7), (1_000_000, 126.9)])
def test_link_bound(baud, expected):
    assert protocol.link_images_per_second(baud, 784) == pytest.approx(expected, abs=0.1)


def test_ecp5_pll_dividers():
    from bs4nn.gen.board import ecp5_pll_dividers
    from bs4nn.model.errors import UserError

    # The smallest dividers with the phase detector and the VCO (420 and 400 MHz) in range.
    assert ecp5_pll_dividers(25_000_000, 30_000_000) == (5, 6, 14)
    assert ecp5_pll_dividers(25_000_000, 40_000_000) == (5, 8, 10)
    with pytest.raises(UserError, match="no EHXPLLL setting makes 36 MHz from 25 MHz exactly"):
        ecp5_pll_dividers(25_000_000, 36_000_000)


def test_timing_failure_names_the_slowest_clock():
    from bs4nn.sim.bitstream import timing_failure

    # The shape of nextpnr's --report, with the ULX3S build's figure.
    passed = {"fmax": {"$glbnet$clk": {"achieved": 50.98, "constraint": 30.0003}}}
    assert timing_failure(passed) is None
    failed = {"fmax": {"$glbnet$clk": {"achieved": 27.41, "constraint": 30.0003},
                       "$glbnet$other": {"achieved": 90.0, "constraint": 25.0}}}
    assert timing_failure(failed) == ("timing not met: clock $glbnet$clk reaches 27.4 MHz, "
                                      "30.0 MHz needed")


def test_weights_frame_layout():
    from bs4nn.model import packing
    from bs4nn.sim.stimulus import random_network

    network = random_network(np.random.default_rng(3), [40, 24, 10])
    words = packing.weight_stream_beats(network, 8)
    size = protocol.weight_word_bytes(network.sizes, 8)
    fields = packing.weight_stream_fields(network.sizes, 8)
    assert size == packing.tdata_width(sum(width for _, width in fields)) // 8
    frame = protocol.weights_frame(5, network, 8)
    assert len(frame) == protocol.weights_frame_bytes(network, 8) == 2 + len(words) * size + 2
    assert frame[:2] == bytes([protocol.WEIGHTS_SYNC, 5])
    assert [int.from_bytes(frame[2 + k * size:2 + (k + 1) * size], "little")
            for k in range(len(words))] == words
    assert int.from_bytes(frame[-2:], "little") == protocol.crc16(frame[1:-2])


class FakePort:
    """A serial port that answers every write with ``replies`` (bytes)."""

    def __init__(self, replies):
        self.replies, self.written, self.pending = replies, b"", b""

    def reset_input_buffer(self):
        self.pending = b""

    def write(self, data):
        self.written += data
        self.pending += self.replies

    def read(self, size):
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


@pytest.mark.parametrize(("status", "message"), [
    (protocol.STATUS_OK, None),
    (protocol.STATUS_BAD_CHECKSUM, "the board answered the weight frame 'bad checksum'"),
    (None, "no reply to the weight frame"),
])
def test_send_weights_checks_the_reply(status, message):
    from bs4nn.model.errors import UserError
    from bs4nn.sim.board_host import DesignParameters, send_weights
    from bs4nn.sim.stimulus import random_network

    network = random_network(np.random.default_rng(3), [40, 24, 10])
    design = DesignParameters("ram", 8, 1, (40, 24, 10))
    reply = b"" if status is None else protocol.reply_frame(10, 0, status)
    port = FakePort(reply)
    if message is None:
        assert send_weights(port, network, design, baud=3_000_000) == len(port.written)
        assert port.written == protocol.weights_frame(0, network, 8)
    else:
        with pytest.raises(UserError, match=message):
            send_weights(port, network, design, baud=3_000_000, reply_timeout=0.01)


def test_send_weights_refuses_another_network_shape():
    from bs4nn.model.errors import UserError
    from bs4nn.sim.board_host import DesignParameters, send_weights
    from bs4nn.sim.stimulus import random_network

    network = random_network(np.random.default_rng(3), [40, 24, 10])
    with pytest.raises(UserError, match="the design on the board is for a 40-16-10 network, "
                                        "the weights are 40-24-10"):
        send_weights(FakePort(b""), network, DesignParameters("ram", 8, 1, (40, 16, 10)),
                     baud=3_000_000)


def test_board_run_with_a_bad_design_file_is_one_line(tmp_path, capsys):
    design = tmp_path / "summary.json"
    design.write_text('{"board": "ulx3s-85f"}')
    assert main(["board", "run", "--port", "/dev/null", "--n", "2", "--design",
                 str(design)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"bs4nn board: error: {design}: not a board design description (its "
                   f"summary.json): KeyError 'parameters'"]


def test_board_core_takes_ram_weights():
    from bs4nn.gen.board import build_core
    from bs4nn.model import packing
    from bs4nn.sim.stimulus import random_network

    network = random_network(np.random.default_rng(3), [40, 24, 10])
    core = build_core(network, clocks_per_bit=4, timeout_cycles=100, lanes=8,
                      weight_storage="ram")
    assert core.weight_upload
    assert core.weight_words == len(packing.weight_stream_beats(network, 8))
