"""Payload layouts shared by the blocks of the accelerator.

Data walks through the design in one direction, and each hop has one layout here:

raw pixel beats (:func:`pixel_beat_layout`) → framed beats (:func:`framed_beat_layout`) →
time-ordered input events (:func:`event_layout`) → spike vectors per step
(:func:`spike_vector_layout`) → results (:func:`result_layout`).

Bit order of everything that crosses the chip boundary comes from :mod:`bs4nn.model.packing`.
"""

from amaranth.hdl import unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

from ..model import packing

__all__ = ["pixel_beat_layout", "framed_beat_layout", "event_layout", "spike_vector_layout",
           "result_layout", "debug_event_layout", "step_shape", "index_shape",
           "weight_word_layout", "weight_write_layout"]


def index_shape(count):
    """Shape of an index in ``0 .. count - 1`` (at least one bit)."""
    return unsigned(max(1, ceil_log2(count)))


def step_shape():
    """A time step or spike time, ``0 .. 256`` (256 meaning "no spike")."""
    return unsigned(packing.STEP_WIDTH)


def pixel_beat_layout(pixels_per_beat):
    """A beat of the pixel input stream: pixel ``k`` in bits ``[8k, 8k + 8)``, and ``last``."""
    return data.StructLayout({
        "pixels": data.ArrayLayout(packing.PIXEL_BITS, pixels_per_beat),
        "last": 1,
    })


def framed_beat_layout(n_beats, pixels_per_beat):
    """A pixel beat placed in its frame (see :class:`~.pixel_input.PixelFramer`).

    ``beat`` is the beat's index in the frame; ``keep`` is 0 for beats past the expected frame
    length; ``start`` marks the first beat of a frame and ``end`` its last (``last`` asserted);
    ``error`` (only with ``end``) says the frame did not have exactly ``n_beats`` beats.
    """
    return data.StructLayout({
        "pixels": data.ArrayLayout(packing.PIXEL_BITS, pixels_per_beat),
        "beat": index_shape(n_beats),
        "keep": 1,
        "start": 1,
        "end": 1,
        "error": 1,
    })


def event_layout(n_inputs, groups, events_per_cycle=1):
    """A round of input spike events, in time order, as the scheduler hands it to the first
    layer.

    Every image starts with one ``start`` token that carries no event (it resets the layers;
    with ``end`` also set the image has no event at all, and ``error`` marks a malformed frame).
    Each other token holds up to ``events_per_cycle`` events of one ``step``, for lane group
    ``group``: slot ``w`` (bit ``w`` of ``slots``) is input ``pixels[w]``, one with
    ``pixels[w] % events_per_cycle == w``; ``step_end`` marks the tokens of a step's last round
    (one per lane group) and ``end`` the last token of the image.
    """
    return data.StructLayout({
        "slots": events_per_cycle,
        "pixels": data.ArrayLayout(index_shape(n_inputs), events_per_cycle),
        "group": index_shape(groups),
        "step": step_shape(),
        "start": 1,
        "step_end": 1,
        "end": 1,
        "error": 1,
    })


def spike_vector_layout(n_neurons, groups=1):
    """The spikes of one layer at one step (``spikes`` bit ``j`` is neuron ``j``).

    Tokens come one per active step in time order, framed by ``start`` (a token with no spikes
    that resets the next layer) and ``end`` (the image's last token); ``error`` travels with
    ``end`` for malformed frames. With ``groups > 1`` a step's spikes come as ``groups``
    tokens in group order, token ``group`` holding neurons ``group * n_neurons ..
    group * n_neurons + n_neurons - 1``; only the last group's token may carry ``end``, and a
    ``start`` token is of group 0.
    """
    return data.StructLayout({
        "spikes": n_neurons,
        "group": index_shape(groups),
        "step": step_shape(),
        "start": 1,
        "end": 1,
        "error": 1,
    })


def result_layout(n_classes):
    """A result word: :func:`bs4nn.model.packing.result_fields`, LSB first."""
    return data.StructLayout(dict(packing.result_fields(n_classes)))


def debug_event_layout(hidden_sizes):
    """A hidden spike event: :func:`bs4nn.model.packing.debug_event_fields`, LSB first."""
    return data.StructLayout(dict(packing.debug_event_fields(hidden_sizes)))


def weight_word_layout(fields):
    """A word of the weight-load stream (``packing.weight_stream_fields``), then ``last``."""
    return data.StructLayout({**dict(fields), "last": 1})


def weight_write_layout(fields):
    """One storage write decoded from a weight-load word, as a layer receives it."""
    widths = dict(fields)
    return data.StructLayout({"data": widths["data"], "address": widths["address"], "kind": 1})
