"""The gateware side of the serial link protocol (:mod:`bs4nn.model.protocol`): the frame
receiver, which feeds pixel beats (and, for run-time weights, weight-load words) to the
accelerator and says how each frame ended, and the reply sender, which pairs each image's result
with its frame's status and sends the reply bytes."""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..model import protocol
from .layouts import pixel_beat_layout, result_layout, weight_word_layout

__all__ = ["frame_status_layout", "crc16_next", "FrameReceiver", "ReplySender"]


def frame_status_layout():
    """How a frame ended: its sequence byte, a ``protocol.STATUS_*`` code, and whether it was a
    weight frame (which has no accelerator result)."""
    return data.StructLayout({"sequence": 8, "status": protocol.STATUS_BITS, "weights": 1})


def crc16_next(crc, byte):
    """The CRC after ``byte`` (16-bit ``crc``, 8-bit ``byte`` values): a combinational value.

    The byte update of ``protocol.crc16`` is linear over GF(2) in the bits of ``crc`` and
    ``byte``, so each output bit is the XOR of the input bits whose unit response sets it; the
    responses come from ``protocol.crc16`` itself.
    """
    inputs = [(crc[k], protocol.crc16(b"\0", 1 << k)) for k in range(16)]
    inputs += [(byte[k], protocol.crc16(bytes([1 << k]), 0)) for k in range(8)]
    bits = []
    for j in range(16):
        terms = [bit for bit, response in inputs if response >> j & 1]
        value = terms[0]
        for term in terms[1:]:
            value = value ^ term
        bits.append(value)
    return Cat(*bits)


class FrameReceiver(wiring.Component):
    """Image frames (bytes) to pixel beats, weight frames to weight-load words, and one status
    per frame.

    Bytes before a sync byte are skipped. The pixels of an image frame go out as beats as they
    arrive, ``last`` on the frame's final beat; the status (``protocol.STATUS_OK`` or
    ``STATUS_BAD_CHECKSUM``) follows the CRC bytes. A frame that stops for ``timeout_cycles``
    is closed with ``STATUS_TRUNCATED``; if it stopped before its last pixel, the beat being
    filled goes out at once with ``last`` (the accelerator gives a result for that short frame,
    which the reply sender replaces by an error reply). So every image frame begun gives
    exactly one accelerator frame and one status, in order.

    Given ``weight_fields``, weight frames (``protocol.WEIGHTS_SYNC``) are taken too: each
    word goes out on ``o_words`` as its last byte arrives, ``last`` on the frame's final word.
    The receiver never waits in a weight frame (the UART has no flow control): a word complete
    while the one before is still offered is dropped, and the frame is answered
    ``STATUS_OVERRUN`` however it ends. A weight frame that ends early, or whose last word was
    dropped, still ends the accelerator's weight frame with one word marked ``last`` (the word
    being filled), so the accelerator is never left waiting. The status of a weight frame comes
    once all its words are taken. The *weights good* flag of ``protocol`` lives here: while it
    is clear, an image frame's ``STATUS_OK`` becomes ``STATUS_NO_WEIGHTS``.

    Parameters
    ----------
    n_inputs : int
    pixels_per_beat : int
    timeout_cycles : int
        Cycles without a byte after which a frame counts as truncated.
    weight_fields : list of (str, int), optional
        ``packing.weight_stream_fields`` of the design; None: image frames only.
    weight_words : int
        Words in a weight frame (``len(packing.weight_stream_beats(...))``); with
        ``weight_fields`` only.

    Members
    -------
    i_bytes : ``In(stream.Signature(8))``
    o_beats : ``Out(stream.Signature(pixel_beat_layout(pixels_per_beat)))``
    o_status : ``Out(stream.Signature(frame_status_layout()))``
    o_words : ``Out(stream.Signature(weight_word_layout(weight_fields)))``, only with
        ``weight_fields``
    o_weights_good : ``Out(1)``, only with ``weight_fields``
        The *weights good* flag.
    """

    def __init__(self, n_inputs, pixels_per_beat, timeout_cycles, *, weight_fields=None,
                 weight_words=0):
        for name, value in (("n_inputs", n_inputs), ("pixels_per_beat", pixels_per_beat),
                            ("timeout_cycles", timeout_cycles)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if weight_fields is not None and (isinstance(weight_words, bool)
                                          or not isinstance(weight_words, int)
                                          or weight_words < 1):
            raise ValueError(f"weight_words must be a positive integer, got {weight_words!r}")
        self._n_inputs = n_inputs
        self._pixels_per_beat = pixels_per_beat
        self._timeout_cycles = timeout_cycles
        self._weight_fields = weight_fields
        self._weight_words = weight_words if weight_fields is not None else 0
        members = {
            "i_bytes": In(stream.Signature(8)),
            "o_beats": Out(stream.Signature(pixel_beat_layout(pixels_per_beat))),
            "o_status": Out(stream.Signature(frame_status_layout())),
        }
        if weight_fields is not None:
            members["o_words"] = Out(stream.Signature(weight_word_layout(weight_fields)))
            members["o_weights_good"] = Out(1)
        super().__init__(members)

    @property
    def n_inputs(self):
        return self._n_inputs

    @property
    def pixels_per_beat(self):
        return self._pixels_per_beat

    @property
    def timeout_cycles(self):
        return self._timeout_cycles

    @property
    def weight_fields(self):
        return self._weight_fields

    @property
    def weight_words(self):
        return self._weight_words

    @property
    def weight_word_bits(self):
        """Bits of a weight-load word (its fields, without ``last``); 0 without weights."""
        return sum(width for _, width in self._weight_fields or ())

    @property
    def weight_word_bytes(self):
        """Bytes of a weight-load word in a weight frame (``protocol.weight_word_bytes``)."""
        return -(-self.weight_word_bits // 8)

    def elaborate(self, platform):
        m = Module()
        ppb = self._pixels_per_beat
        i, beats, status = self.i_bytes, self.o_beats, self.o_status
        pixel = Signal(range(self._n_inputs))
        lane = Signal(range(ppb))
        beat = Signal(data.ArrayLayout(8, ppb))
        crc = Signal(16)
        crc_low = Signal(8)
        sequence = Signal(8)
        code = Signal(protocol.STATUS_BITS)
        weight_frame = Signal()
        idle = Signal(range(self._timeout_cycles + 1))
        timed_out = Signal()
        take = Signal()

        m.d.comb += [take.eq(i.valid & i.ready), timed_out.eq(idle == self._timeout_cycles)]
        with m.If(take):
            m.d.sync += idle.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += idle.eq(idle + 1)
        with m.If(beats.ready):
            m.d.sync += beats.valid.eq(0)
        with m.If(status.ready):
            m.d.sync += status.valid.eq(0)

        if self._weight_fields is not None:
            words = self.o_words
            n_bytes = self.weight_word_bytes
            word_index = Signal(range(self._weight_words))
            byte_index = Signal(range(n_bytes))
            word = Signal(data.ArrayLayout(8, n_bytes))
            # A word of this frame has gone to the accelerator / its last one has.
            began, ended = Signal(), Signal()
            overrun = Signal()
            # Not reset, like the weights it speaks for; clear at power-up (protocol).
            good = Signal(reset_less=True)
            m.d.comb += self.o_weights_good.eq(good)
            with m.If(words.ready):
                m.d.sync += words.valid.eq(0)

        def end_frame(image_next):
            """Go on to ``image_next``; a weight frame first finishes its words (FINISH)."""
            m.next = image_next
            if self._weight_fields is not None:
                with m.If(weight_frame):
                    m.next = "FINISH"

        with m.FSM():
            with m.State("SYNC"):
                m.d.comb += i.ready.eq(1)
                with m.If(take & (i.payload == protocol.IMAGE_SYNC)):
                    m.d.sync += [crc.eq(protocol.CRC_INIT), pixel.eq(0), lane.eq(0),
                                 beat.eq(0), weight_frame.eq(0)]
                    m.next = "SEQUENCE"
                if self._weight_fields is not None:
                    with m.If(take & (i.payload == protocol.WEIGHTS_SYNC)):
                        m.d.sync += [crc.eq(protocol.CRC_INIT), word_index.eq(0),
                                     byte_index.eq(0), word.eq(0), began.eq(0), ended.eq(0),
                                     overrun.eq(0), weight_frame.eq(1)]
                        m.next = "SEQUENCE"
            with m.State("SEQUENCE"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    m.d.sync += [sequence.eq(i.payload),
                                 crc.eq(crc16_next(crc, i.payload))]
                    if self._weight_fields is not None:
                        with m.If(weight_frame):
                            m.next = "WORDS"
                        with m.Else():
                            m.next = "PIXELS"
                    else:
                        m.next = "PIXELS"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(protocol.STATUS_TRUNCATED)
                    end_frame("FLUSH")
            with m.State("PIXELS"):
                # A byte that completes a beat waits for the beat register to be free.
                m.d.comb += i.ready.eq(~beats.valid | ((lane != ppb - 1)
                                                       & (pixel != self._n_inputs - 1)))
                with m.If(take):
                    m.d.sync += [beat[lane].eq(i.payload), crc.eq(crc16_next(crc, i.payload)),
                                 pixel.eq(pixel + 1), lane.eq(lane + 1)]
                    with m.If((lane == ppb - 1) | (pixel == self._n_inputs - 1)):
                        last = pixel == self._n_inputs - 1
                        m.d.sync += [beats.valid.eq(1), beats.payload.last.eq(last),
                                     lane.eq(0), beat.eq(0)]
                        for k in range(ppb):
                            m.d.sync += beats.payload.pixels[k].eq(
                                Mux(lane == k, i.payload, beat[k]))
                        with m.If(last):
                            m.next = "CRC_LOW"
                with m.Elif(timed_out):
                    m.next = "FLUSH"
            with m.State("FLUSH"):
                with m.If(~beats.valid | beats.ready):
                    m.d.sync += [beats.valid.eq(1), beats.payload.pixels.eq(beat),
                                 beats.payload.last.eq(1),
                                 code.eq(protocol.STATUS_TRUNCATED)]
                    m.next = "REPORT"
            if self._weight_fields is not None:
                with m.State("WORDS"):
                    m.d.comb += i.ready.eq(1)
                    with m.If(take):
                        m.d.sync += [word[byte_index].eq(i.payload),
                                     crc.eq(crc16_next(crc, i.payload)),
                                     byte_index.eq(byte_index + 1)]
                        with m.If(byte_index == n_bytes - 1):
                            last = word_index == self._weight_words - 1
                            m.d.sync += [byte_index.eq(0), word_index.eq(word_index + 1)]
                            with m.If(~words.valid | words.ready):
                                full = Cat(*(Mux(byte_index == k, i.payload, word[k])
                                             for k in range(n_bytes)))
                                m.d.sync += [
                                    words.valid.eq(1), words.payload.last.eq(last),
                                    words.payload.as_value()[:self.weight_word_bits].eq(
                                        full[:self.weight_word_bits]),
                                    began.eq(1), ended.eq(last), good.eq(0)]
                            with m.Else():
                                m.d.sync += overrun.eq(1)
                            with m.If(last):
                                m.next = "CRC_LOW"
                    with m.Elif(timed_out):
                        m.d.sync += code.eq(Mux(overrun, protocol.STATUS_OVERRUN,
                                                protocol.STATUS_TRUNCATED))
                        m.next = "FINISH"
                with m.State("FINISH"):
                    # A weight frame that began in the accelerator must end there with last.
                    with m.If(began & ~ended):
                        with m.If(~words.valid | words.ready):
                            m.d.sync += [
                                words.valid.eq(1), words.payload.last.eq(1),
                                words.payload.as_value()[:self.weight_word_bits].eq(
                                    word.as_value()[:self.weight_word_bits]),
                                ended.eq(1)]
                    with m.Elif(~words.valid):
                        m.d.sync += good.eq(code == protocol.STATUS_OK)
                        m.next = "REPORT"
            with m.State("CRC_LOW"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    m.d.sync += crc_low.eq(i.payload)
                    m.next = "CRC_HIGH"
                with m.Elif(timed_out):
                    m.d.sync += code.eq(protocol.STATUS_TRUNCATED)
                    end_frame("REPORT")
            with m.State("CRC_HIGH"):
                m.d.comb += i.ready.eq(1)
                with m.If(take):
                    match = crc == (crc_low | (i.payload << 8))
                    verdict = Mux(match, protocol.STATUS_OK, protocol.STATUS_BAD_CHECKSUM)
                    if self._weight_fields is not None:
                        verdict = Mux(weight_frame & overrun, protocol.STATUS_OVERRUN, verdict)
                    m.d.sync += code.eq(verdict)
                    end_frame("REPORT")
                with m.Elif(timed_out):
                    m.d.sync += code.eq(protocol.STATUS_TRUNCATED)
                    end_frame("REPORT")
            with m.State("REPORT"):
                with m.If(~status.valid | status.ready):
                    reported = code
                    if self._weight_fields is not None:
                        reported = Mux(~weight_frame & ~good & (code == protocol.STATUS_OK),
                                       protocol.STATUS_NO_WEIGHTS, code)
                    m.d.sync += [status.valid.eq(1), status.payload.sequence.eq(sequence),
                                 status.payload.status.eq(reported),
                                 status.payload.weights.eq(weight_frame)]
                    m.next = "SYNC"
        return m


class ReplySender(wiring.Component):
    """Each frame's status, with its image's result, as reply bytes (``protocol.reply_frame``).

    An image frame's status and its result are taken together; a status other than
    ``STATUS_OK`` sends a zero result word, whatever the accelerator computed for that frame. A
    weight frame's status (``weights`` set) has no result: its reply carries a zero result word.

    Parameters
    ----------
    n_classes : int

    Members
    -------
    i_results : ``In(stream.Signature(result_layout(n_classes)))``
    i_status : ``In(stream.Signature(frame_status_layout()))``
    o_bytes : ``Out(stream.Signature(8))``
    """

    def __init__(self, n_classes):
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an integer of at least 2, got {n_classes!r}")
        self._n_classes = n_classes
        super().__init__({
            "i_results": In(stream.Signature(result_layout(n_classes))),
            "i_status": In(stream.Signature(frame_status_layout())),
            "o_bytes": Out(stream.Signature(8)),
        })

    @property
    def n_classes(self):
        return self._n_classes

    @property
    def reply_bytes(self):
        return protocol.reply_frame_bytes(self._n_classes)

    def elaborate(self, platform):
        m = Module()
        n_result = protocol.result_bytes(self._n_classes)
        results, status, o = self.i_results, self.i_status, self.o_bytes
        body = Array(Signal(8, name=f"body{k}") for k in range(2 + n_result))
        index = Signal(range(self.reply_bytes + 1))
        crc = Signal(16)
        busy = Signal()
        take = Signal()
        with_result = ~status.payload.weights
        m.d.comb += [take.eq(status.valid & (results.valid | ~with_result) & ~busy),
                     results.ready.eq(take & with_result), status.ready.eq(take)]
        with m.If(take):
            word = Mux(with_result & (status.payload.status == protocol.STATUS_OK),
                       results.payload.as_value(), 0)
            m.d.sync += [body[0].eq(status.payload.sequence), body[1].eq(status.payload.status),
                         busy.eq(1), index.eq(0), crc.eq(protocol.CRC_INIT)]
            for k in range(n_result):
                m.d.sync += body[2 + k].eq(word[8 * k:8 * k + 8])

        crc_at = 3 + n_result
        m.d.comb += [
            o.valid.eq(busy),
            o.payload.eq(Mux(index == 0, protocol.REPLY_SYNC,
                             Mux(index == crc_at, crc[:8],
                                 Mux(index == crc_at + 1, crc[8:], body[index - 1])))),
        ]
        with m.If(o.valid & o.ready):
            m.d.sync += index.eq(index + 1)
            with m.If((index != 0) & (index < crc_at)):
                m.d.sync += crc.eq(crc16_next(crc, o.payload))
            with m.If(index == crc_at + 1):
                m.d.sync += busy.eq(0)
        return m
