"""The serial link between a host and the accelerator on a board: one definition, used by the
gateware (``bs4nn.gen.link``), its testbench (``rtl_tests/test_board.py``) and the host program
(``bs4nn.sim.board_host``).

UART, 8 data bits, no parity, 1 stop bit, LSB first. Three kinds of frame:

* **image** (host → board): ``IMAGE_SYNC``, a sequence byte, the ``n_inputs`` pixel bytes,
  then the CRC of the sequence byte and the pixels, low byte first;
* **weights** (host → board, only to a design with run-time weights, ``weight_storage`` other
  than ``"rom"``): ``WEIGHTS_SYNC``, a sequence byte, every word of
  ``packing.weight_stream_beats(network, lanes, events_per_cycle)`` in order, each
  :func:`weight_word_bytes` bytes little-endian (the ``w_axis`` ``TDATA`` word: the fields of
  ``packing.weight_stream_fields`` in the low bits, zero padding above), then the CRC of the
  sequence byte and the words, low byte first. The board knows the word count from its design,
  so the frame has no length field; the last word goes to the accelerator with ``tlast``;
* **reply** (board → host): ``REPLY_SYNC``, the frame's sequence byte, a status byte
  (``STATUS_*``), the result word (``packing.result_fields``, little-endian, whole bytes; 0 in
  the reply to a weight frame), then the CRC of everything after the sync byte, low byte
  first.

The CRC is CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
XOR). The board answers every image frame it saw begin with exactly one reply, in order. A
frame whose checksum fails, or that stops for longer than the receiver's timeout, gets an error
reply whose result word is 0: a corrupted frame never yields a class. A frame lost whole (its
sync byte gone) gets no reply; the host counts it as lost once its own timeout passes.

**Weights.** The words of a weight frame are written into the accelerator as they arrive (a
whole network does not fit a buffer on the board), so the CRC is known only after the weights
have changed. A board with run-time weights therefore keeps a *weights good* flag: it is clear
at power-up (whatever the RAM was initialised with), cleared when a weight frame's first word
goes to the accelerator, and set only when a weight frame ends with all its words taken and a
good CRC. While it is clear, every image frame that would be answered :data:`STATUS_OK` is
answered :data:`STATUS_NO_WEIGHTS` with a zero result: a bad weight frame leaves the
accelerator half-loaded, but never answering as if it were fine. A weight frame is answered
:data:`STATUS_OK`, :data:`STATUS_BAD_CHECKSUM`, :data:`STATUS_TRUNCATED` (it stopped for longer
than the timeout; one that stops before its first word is complete changes nothing) or
:data:`STATUS_OVERRUN` (a word was complete before the accelerator took the one before: it
takes weights only between images, so the host waits for every image's reply before sending
weights). The accelerator finishes the images it holds with the old weights, and computes every
image frame that follows the weight frame with the new ones.
"""

from dataclasses import dataclass

import numpy as np

from . import packing

__all__ = ["IMAGE_SYNC", "WEIGHTS_SYNC", "REPLY_SYNC", "CRC_POLY", "CRC_INIT", "STATUS_OK",
           "STATUS_BAD_CHECKSUM", "STATUS_TRUNCATED", "STATUS_NO_WEIGHTS", "STATUS_OVERRUN",
           "STATUS_NAMES", "STATUS_BITS", "crc16", "image_frame", "image_frame_bytes",
           "weight_word_bytes", "weights_frame", "weights_frame_bytes", "result_bytes",
           "reply_frame", "reply_frame_bytes", "Reply", "ReplyDecoder",
           "link_images_per_second"]

IMAGE_SYNC = 0xA5
WEIGHTS_SYNC = 0xC3
REPLY_SYNC = 0x5A
CRC_POLY = 0x1021
CRC_INIT = 0xFFFF
CRC_BYTES = 2
#: UART bits per byte on the wire: start, 8 data, stop.
BITS_PER_BYTE = 10

STATUS_OK = 0
STATUS_BAD_CHECKSUM = 1
STATUS_TRUNCATED = 2
#: An image frame's reply while the board holds no good weights (see the module docstring).
STATUS_NO_WEIGHTS = 3
#: A weight frame's reply: a word was lost because the accelerator was still busy with images.
STATUS_OVERRUN = 4
STATUS_NAMES = {STATUS_OK: "ok", STATUS_BAD_CHECKSUM: "bad checksum",
                STATUS_TRUNCATED: "truncated", STATUS_NO_WEIGHTS: "no weights",
                STATUS_OVERRUN: "overrun"}
#: Bits of a status code in the gateware.
STATUS_BITS = max(STATUS_NAMES).bit_length()


def crc16(data, crc=CRC_INIT):
    """CRC-16/CCITT-FALSE of ``data`` (bytes), continuing from ``crc``."""
    for byte in bytes(data):
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def image_frame(sequence, pixels):
    """The image frame of uint8 ``pixels`` ``(n_inputs,)`` with ``sequence`` (0..255)."""
    body = bytes([sequence]) + np.asarray(pixels, dtype=np.uint8).tobytes()
    return bytes([IMAGE_SYNC]) + body + crc16(body).to_bytes(CRC_BYTES, "little")


def image_frame_bytes(n_inputs):
    """Length of an image frame of ``n_inputs`` pixels."""
    return 2 + n_inputs + CRC_BYTES


def weight_word_bytes(sizes, lanes=0, events_per_cycle=1):
    """Bytes of one word in a weight frame of a design (``sizes`` ``[n_in, n_hidden...,
    n_out]``, ``lanes`` and ``events_per_cycle`` as given to the generator)."""
    fields = packing.weight_stream_fields(sizes, lanes, events_per_cycle)
    return packing.tdata_width(sum(width for _, width in fields)) // 8


def weights_frame(sequence, network, lanes=0, events_per_cycle=1):
    """The weight frame that loads ``network`` into a design with ``lanes`` and
    ``events_per_cycle`` (as given to the generator), with ``sequence`` (0..255)."""
    size = weight_word_bytes(network.sizes, lanes, events_per_cycle)
    words = packing.weight_stream_beats(network, lanes, events_per_cycle)
    body = bytes([sequence]) + b"".join(word.to_bytes(size, "little") for word in words)
    return bytes([WEIGHTS_SYNC]) + body + crc16(body).to_bytes(CRC_BYTES, "little")


def weights_frame_bytes(network, lanes=0, events_per_cycle=1):
    """Length of the weight frame of ``network``."""
    words = len(packing.weight_stream_beats(network, lanes, events_per_cycle))
    return 2 + words * weight_word_bytes(network.sizes, lanes, events_per_cycle) + CRC_BYTES


def result_bytes(n_classes):
    """Bytes of the result word in a reply."""
    return packing.tdata_width(sum(width for _, width in packing.result_fields(n_classes))) // 8


def reply_frame_bytes(n_classes):
    """Length of a reply frame."""
    return 3 + result_bytes(n_classes) + CRC_BYTES


def reply_frame(n_classes, sequence, status, result=None):
    """The reply frame the board sends; ``result`` (a dict of ``packing.result_fields``) only
    with :data:`STATUS_OK` (an error reply, and the reply to a weight frame, ``result`` None,
    carry a zero result word)."""
    word = (packing.pack_result(n_classes, **result)
            if status == STATUS_OK and result is not None else 0)
    body = bytes([sequence, status]) + word.to_bytes(result_bytes(n_classes), "little")
    return bytes([REPLY_SYNC]) + body + crc16(body).to_bytes(CRC_BYTES, "little")


@dataclass(frozen=True)
class Reply:
    """A decoded reply: ``result`` is a dict of ``packing.result_fields`` (all 0 on errors)."""

    sequence: int
    status: int
    result: dict

    @property
    def ok(self):
        return self.status == STATUS_OK


class ReplyDecoder:
    """Turns the bytes received from the board into :class:`Reply` objects.

    Bytes are fed in any pieces (:meth:`feed` returns the replies completed); bytes before a
    sync byte, and replies whose checksum fails, are skipped (``discarded`` counts the bytes).
    """

    def __init__(self, n_classes):
        self.n_classes = n_classes
        self.length = reply_frame_bytes(n_classes)
        self.buffer = bytearray()
        self.discarded = 0

    def feed(self, data):
        self.buffer += bytes(data)
        replies = []
        while True:
            start = self.buffer.find(REPLY_SYNC)
            if start < 0:
                self.discarded += len(self.buffer)
                self.buffer.clear()
                return replies
            self.discarded += start
            del self.buffer[:start]
            if len(self.buffer) < self.length:
                return replies
            frame = bytes(self.buffer[:self.length])
            body, check = frame[1:-CRC_BYTES], frame[-CRC_BYTES:]
            if crc16(body) != int.from_bytes(check, "little") or body[1] not in STATUS_NAMES:
                self.discarded += 1
                del self.buffer[:1]
                continue
            del self.buffer[:self.length]
            word = int.from_bytes(body[2:], "little")
            replies.append(Reply(body[0], body[1], packing.unpack_result(self.n_classes, word)))


def link_images_per_second(baud, n_inputs):
    """The most image frames per second a UART at ``baud`` carries (the link's bound)."""
    return baud / (BITS_PER_BYTE * image_frame_bytes(n_inputs))
