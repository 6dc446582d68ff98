"""The pixel input stream: frames beats by ``last`` and checks each frame's length."""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import framed_beat_layout, pixel_beat_layout

__all__ = ["PixelFramer", "PIXELS_PER_BEAT_CHOICES", "beats_per_frame"]

#: Supported beat widths, in pixels.
PIXELS_PER_BEAT_CHOICES = (1, 2, 4, 8, 16)


def beats_per_frame(n_inputs, pixels_per_beat):
    """Beats of a well-formed frame: ``ceil(n_inputs / pixels_per_beat)``."""
    return -(-n_inputs // pixels_per_beat)


class PixelFramer(wiring.Component):
    """Place each pixel beat in its frame; flag frames of the wrong length.

    Frame boundaries follow ``last`` alone. A frame must have exactly
    ``n_beats = ceil(n_inputs / pixels_per_beat)`` beats; a frame whose ``last`` comes early or
    late is passed on with ``error`` set on its final beat, and beats past ``n_beats`` are marked
    ``keep = 0`` so that nothing downstream stores them. The next frame starts clean.

    The block is combinational on the data path (no added latency): ``o_beats.valid`` is
    ``i_beats.valid`` and ``i_beats.ready`` is ``o_beats.ready``.

    Parameters
    ----------
    n_inputs : int
        Pixels per image.
    pixels_per_beat : int
        One of :data:`PIXELS_PER_BEAT_CHOICES`.

    Members
    -------
    i_beats : ``In(stream.Signature(pixel_beat_layout(pixels_per_beat)))``
    o_beats : ``Out(stream.Signature(framed_beat_layout(n_beats, pixels_per_beat)))``
    """

    def __init__(self, n_inputs, pixels_per_beat):
        if not isinstance(n_inputs, int) or n_inputs < 1:
            raise ValueError(f"n_inputs must be a positive integer, got {n_inputs!r}")
        if pixels_per_beat not in PIXELS_PER_BEAT_CHOICES:
            raise ValueError(f"pixels_per_beat must be one of {PIXELS_PER_BEAT_CHOICES}, "
                             f"got {pixels_per_beat!r}")
        self._n_inputs = n_inputs
        self._pixels_per_beat = pixels_per_beat
        super().__init__({
            "i_beats": In(stream.Signature(pixel_beat_layout(pixels_per_beat))),
            "o_beats": Out(stream.Signature(framed_beat_layout(self.n_beats, pixels_per_beat))),
        })

    @property
    def n_inputs(self):
        return self._n_inputs

    @property
    def pixels_per_beat(self):
        return self._pixels_per_beat

    @property
    def n_beats(self):
        """Beats per well-formed frame."""
        return beats_per_frame(self._n_inputs, self._pixels_per_beat)

    def elaborate(self, platform):
        m = Module()
        # Index of the current beat in its frame; saturates at n_beats for over-long frames.
        beat = Signal(range(self.n_beats + 1))
        i, o = self.i_beats, self.o_beats
        m.d.comb += [
            o.valid.eq(i.valid),
            i.ready.eq(o.ready),
            o.payload.pixels.eq(i.payload.pixels),
            o.payload.beat.eq(beat),
            o.payload.keep.eq(beat < self.n_beats),
            o.payload.start.eq(beat == 0),
            o.payload.end.eq(i.payload.last),
            o.payload.error.eq(i.payload.last & (beat != self.n_beats - 1)),
        ]
        with m.If(i.valid & i.ready):
            with m.If(i.payload.last):
                m.d.sync += beat.eq(0)
            with m.Elif(beat < self.n_beats):
                m.d.sync += beat.eq(beat + 1)
        return m
