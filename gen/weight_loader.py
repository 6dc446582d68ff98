"""Run-time weights (``weight_storage="ram"``): the weight-load stream and writable storage.

The word layout is :func:`bs4nn.model.packing.weight_stream_fields`; see the comment above it
for what each word writes. :class:`WeightLoader` decodes words into one write port per layer;
the layers (each a :class:`LayerComponent`) use :func:`writable_thresholds` and
:func:`writable_rows` to hold what they need in registers (the first layer's columns stay in
its block RAM, which gets a write port).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..model import packing
from ..model.network import Layer
from .layouts import weight_word_layout, weight_write_layout

__all__ = ["LayerComponent", "WeightLoader", "require_layer", "writable_thresholds",
           "writable_rows"]


def require_layer(layer):
    """``layer``, or a TypeError when it is not a :class:`~bs4nn.model.network.Layer`."""
    if not isinstance(layer, Layer):
        raise TypeError(f"layer must be a Layer, got {layer!r}")
    return layer


class LayerComponent(wiring.Component):
    """A component computing one network layer, from constants or, given ``weight_fields``
    (``packing.weight_stream_fields`` of the design), from weights and thresholds written at
    run time through an added ``w_weights`` member,
    ``In(stream.Signature(weight_write_layout(weight_fields), always_ready=True))``.
    """

    def __init__(self, layer, members, weight_fields=None):
        self._layer = require_layer(layer)
        self._weight_fields = weight_fields
        if weight_fields is not None:
            members = {**members, "w_weights": In(stream.Signature(
                weight_write_layout(weight_fields), always_ready=True))}
        super().__init__(members)

    @property
    def layer(self):
        return self._layer

    @property
    def writable(self):
        return self._weight_fields is not None

    @property
    def weight_port(self):
        """The ``w_weights`` member, or None when the layer is constant."""
        return self.w_weights if self.writable else None


class WeightLoader(wiring.Component):
    """Decode weight-load words into per-layer writes, one word per cycle, one cycle later.

    Parameters
    ----------
    sizes : list of int
        ``[n_in, n_hidden..., n_out]``.
    lanes : int
        Lanes of the first layer (as given to the generator; 0 means all).
    events_per_cycle : int
        Event slots of the first layer (its weight banks).

    Members
    -------
    i_words : ``In(stream.Signature(weight_word_layout(fields)))``, always ready
    o_writes{k} : ``Out(stream.Signature(weight_write_layout(fields), always_ready=True))``,
        one per layer ``k``
    """

    def __init__(self, sizes, lanes=0, events_per_cycle=1):
        sizes = [int(n) for n in sizes]
        if len(sizes) < 3 or min(sizes) < 1:
            raise ValueError(f"sizes must list at least three positive layer sizes, got {sizes}")
        self._sizes = sizes
        self._fields = packing.weight_stream_fields(sizes, lanes, events_per_cycle)
        members = {"i_words": In(stream.Signature(weight_word_layout(self._fields)))}
        for k in range(len(sizes) - 1):
            members[f"o_writes{k}"] = Out(stream.Signature(weight_write_layout(self._fields),
                                                           always_ready=True))
        super().__init__(members)

    @property
    def fields(self):
        return self._fields

    @property
    def n_layers(self):
        return len(self._sizes) - 1

    def elaborate(self, platform):
        m = Module()
        words = self.i_words
        m.d.comb += words.ready.eq(1)
        for k in range(self.n_layers):
            port = getattr(self, f"o_writes{k}")
            m.d.sync += [
                port.valid.eq(words.valid & (words.payload.layer == k)),
                port.payload.data.eq(words.payload.data),
                port.payload.address.eq(words.payload.address),
                port.payload.kind.eq(words.payload.kind),
            ]
        return m


def writable_thresholds(m, layer, port):
    """Threshold registers of ``layer`` (initialised from it), written through ``port``.

    With ``port`` None the thresholds are constants. Returns a list of values.
    """
    if port is None:
        return [int(threshold) for threshold in layer.thresholds]
    width = packing.class_width(layer.n_in)
    registers = []
    for j, threshold in enumerate(layer.thresholds):
        # Not reset: weights loaded at run time survive a reset, like the column RAM.
        register = Signal(width, name=f"threshold{j}", init=int(threshold), reset_less=True)
        with m.If(port.valid & (port.payload.kind == packing.WEIGHT_KIND_THRESHOLD)
                  & (port.payload.address == j)):
            m.d.sync += register.eq(port.payload.data[:width])
        registers.append(register)
    return registers


def writable_rows(m, layer, port):
    """Weight row registers of a step layer (initialised from ``layer``), written by ``port``."""
    rows = []
    for j, word in enumerate(packing.row_rom_words(layer.bits)):
        row = Signal(layer.n_in, name=f"row{j}", init=word, reset_less=True)
        with m.If(port.valid & (port.payload.kind == packing.WEIGHT_KIND_WEIGHTS)
                  & (port.payload.address == j)):
            m.d.sync += row.eq(port.payload.data[:layer.n_in])
        rows.append(row)
    return rows
