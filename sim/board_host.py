"""The host side of ``bs4nn board run``: stream images to the board over a serial port with the
link protocol (:mod:`bs4nn.model.protocol`) and check every reply against the golden model.

The serial I/O is a thin layer (pyserial, an optional dependency) over ``protocol.image_frame``,
``protocol.weights_frame`` and ``protocol.ReplyDecoder``, the same code the board testbench
drives the UART pins with. A design with run-time weights (``weight_storage`` other than
``"rom"``) gets its weight frame first (:func:`send_weights`), and images only once the board has
answered it OK.
"""

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..model import protocol
from ..model.errors import UserError
from ..model.inference import infer

__all__ = ["BoardRun", "DesignParameters", "read_design", "open_port", "send_weights",
           "run_images", "WINDOW"]

#: Image frames in flight: enough to cover the USB bridge's latency (milliseconds), few
#: enough that the sequence numbers (mod 256) stay unambiguous.
WINDOW = 8


@dataclass(frozen=True)
class BoardRun:
    """What a run measured: per image, the board's class (-1 for an error or lost frame)."""

    predicted: np.ndarray
    agree: int
    errors: int
    lost: int
    seconds: float
    link_bound: float
    #: Error replies that said the board holds no good weights.
    no_weights: int = 0

    @property
    def images_per_second(self):
        return len(self.predicted) / self.seconds


@dataclass(frozen=True)
class DesignParameters:
    """What the host must know of the design on the board: where its weights are kept, and the
    parameters that shape a weight frame (as given to the generator; ``lanes`` 0: all)."""

    weight_storage: str = "rom"
    lanes: int = 0
    events_per_cycle: int = 1
    sizes: tuple = ()

    @property
    def needs_weights(self):
        return self.weight_storage != "rom"


def read_design(path):
    """The :class:`DesignParameters` in a board build's ``summary.json`` or in a simulation
    build's ``design.json`` (under its ``info``); one-line errors."""
    try:
        info = json.loads(Path(path).read_text())
        parameters = info.get("info", info)["parameters"]
        return DesignParameters(str(parameters["weight_storage"]), int(parameters["lanes"]),
                                int(parameters["events_per_cycle"]),
                                tuple(int(n) for n in parameters.get("sizes", ())))
    except OSError as error:
        raise UserError(f"{path}: cannot read the design description: "
                        f"{error.strerror}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UserError(f"{path}: not a board design description (its summary.json): "
                        f"{type(error).__name__} {error}") from None


def open_port(port, baud):
    """Open ``port`` at ``baud`` with pyserial; one-line errors when it cannot."""
    try:
        import serial
    except ImportError:
        raise UserError("pyserial is not installed (pip install 'bs4nn[board]')") from None
    try:
        return serial.Serial(port, baud, timeout=0.01)
    except (serial.SerialException, OSError) as error:
        raise UserError(f"{port}: cannot open the serial port (is the board plugged in and "
                        f"programmed?): {error}") from None


def send_weights(port, network, design, *, baud, reply_timeout=0.5, sequence=0):
    """Send the weight frame of ``network`` for ``design`` (:class:`DesignParameters`) and wait
    for its reply: the frame's time on the line plus ``reply_timeout`` seconds. Returns the
    frame's length in bytes; a :class:`UserError` unless the board answered it OK."""
    if design.sizes and list(design.sizes) != network.sizes:
        raise UserError(f"the design on the board is for a "
                        f"{'-'.join(map(str, design.sizes))} network, the weights are "
                        f"{network.describe()}")
    frame = protocol.weights_frame(sequence, network, design.lanes, design.events_per_cycle)
    decoder = protocol.ReplyDecoder(network.n_classes)
    port.reset_input_buffer()
    port.write(frame)
    deadline = time.monotonic() + len(frame) * protocol.BITS_PER_BYTE / baud + reply_timeout
    while time.monotonic() < deadline:
        for reply in decoder.feed(port.read(4096)):
            if reply.sequence != sequence:
                continue
            if not reply.ok:
                raise UserError(f"the board answered the weight frame "
                                f"'{protocol.STATUS_NAMES[reply.status]}'")
            return len(frame)
    raise UserError(f"no reply to the weight frame ({len(frame):,} bytes) within "
                    f"{reply_timeout:g} s of its end")


def run_images(port, network, images, *, baud, reply_timeout=0.5, log=print):
    """Send ``images`` (uint8 ``(n, n_inputs)``) through ``port`` (an open pyserial port),
    :data:`WINDOW` frames in flight; returns a :class:`BoardRun`. A frame with no reply within
    ``reply_timeout`` seconds counts as lost; after an error the line idles past the board's
    frame timeout so that the receiver finds the next frame's start."""
    from ..gen.board import BOARD_TIMEOUT_S

    expected = infer(network, images)
    n = len(images)
    predicted = np.full(n, -1)
    decoder = protocol.ReplyDecoder(network.n_classes)
    pending = {}  # sequence -> (image index, deadline)
    agree = errors = lost = no_weights = 0
    next_image = 0
    started = time.monotonic()
    port.reset_input_buffer()
    while next_image < n or pending:
        while next_image < n and len(pending) < WINDOW:
            sequence = next_image % 256
            port.write(protocol.image_frame(sequence, images[next_image]))
            pending[sequence] = (next_image, time.monotonic() + reply_timeout)
            next_image += 1
        resync = False
        for reply in decoder.feed(port.read(4096)):
            index, _ = pending.pop(reply.sequence, (None, None))
            if index is None:
                continue
            if not reply.ok:
                errors += 1
                no_weights += reply.status == protocol.STATUS_NO_WEIGHTS
                resync = True
                continue
            predicted[index] = reply.result["predicted"]
            agree += all(reply.result[name] == int(getattr(expected, name)[index])
                         for name in ("predicted", "decision_step", "fired"))
        now = time.monotonic()
        for sequence, (_, deadline) in list(pending.items()):
            if now > deadline:
                del pending[sequence]
                lost += 1
                resync = True
        if resync:
            time.sleep(2 * BOARD_TIMEOUT_S)
        if next_image and next_image % 1000 == 0 and not pending:
            log(f"  {next_image}/{n} images")
    seconds = time.monotonic() - started
    return BoardRun(predicted, agree, errors, lost, seconds,
                    protocol.link_images_per_second(baud, network.n_inputs), no_weights)
