"""The one module that owns bit order: weights, ROM words, pixel beats and result words.

Conventions, decided once:

* A weight bit is 1 for +1 and 0 for -1.
* Packed weight rows (the weights file) use ``np.packbits(..., bitorder="little")`` along the
  input axis: input ``i`` of a row is bit ``i % 8`` of byte ``i // 8``.
* ROM words are integers whose bit ``l`` belongs to lane ``l`` (LSB first).
* A pixel beat holds ``pixels_per_beat`` 8-bit pixels, pixel ``k`` of the beat in bits
  ``[8k, 8k + 8)``.
* A result word packs the fields of :func:`result_fields` LSB first, in that order.
"""

import numpy as np

__all__ = [
    "pack_rows", "unpack_rows", "signs_to_bits", "bits_to_signs",
    "column_rom_words", "chunk_rom_words", "row_rom_words", "threshold_address",
    "threshold_lane_bits", "pixel_beats",
    "result_fields",
    "pack_result", "unpack_result", "class_width", "STEP_WIDTH", "PIXEL_BITS", "hex_lines",
    "tdata_width",
    "debug_event_fields", "pack_fields", "unpack_fields",
    "weight_stream_fields", "weight_stream_beats", "WEIGHT_KIND_WEIGHTS", "WEIGHT_KIND_THRESHOLD",
]

#: Width of a time step or spike time (0..256, 256 meaning "no spike").
STEP_WIDTH = 9
#: Width of a pixel (uint8).
PIXEL_BITS = 8


def signs_to_bits(signs):
    """Map a ±1 array to a boolean bit array (True for +1)."""
    signs = np.asarray(signs)
    return signs > 0


def bits_to_signs(bits):
    """Map a boolean bit array to an int8 ±1 array."""
    return np.where(np.asarray(bits, dtype=bool), 1, -1).astype(np.int8)


def pack_rows(bits):
    """Pack a boolean ``(n_rows, n_cols)`` array into uint8 ``(n_rows, ceil(n_cols / 8))``."""
    return np.packbits(np.asarray(bits, dtype=bool), axis=1, bitorder="little")


def unpack_rows(packed, n_cols):
    """Inverse of :func:`pack_rows`: uint8 ``(n_rows, n_bytes)`` to boolean ``(n_rows, n_cols)``."""
    return np.unpackbits(packed, axis=1, count=n_cols, bitorder="little").astype(bool)


def _bits_to_int(bits):
    return int.from_bytes(np.packbits(bits, bitorder="little").tobytes(), "little")


def column_rom_words(bits, lanes, events_per_cycle=1):
    """ROM words of an event-driven layer: one word per (input, lane group).

    ``bits`` is ``(n_out, n_in)``. With ``E = events_per_cycle`` banks (input ``i`` in bank
    ``i % E``) and ``G = ceil(n_out / lanes)`` lane groups, address
    ``((i // E) * G + g) * E + i % E`` holds the weights from input ``i`` to neurons
    ``g * lanes .. g * lanes + lanes - 1`` (lane ``l`` in bit ``l``; neurons past ``n_out`` read
    as 0): bank ``b`` is the words at addresses ``b, b + E, ...``. With ``E = 1`` the address is
    ``i * G + g``. Returns a list of ``ceil(n_in / E) * E * G`` integers (inputs past ``n_in``
    read as 0).
    """
    bits = np.asarray(bits, dtype=bool)
    n_out, n_in = bits.shape
    n_groups = -(-n_out // lanes)
    n_rows = -(-n_in // events_per_cycle) * events_per_cycle
    padded = np.zeros((n_groups * lanes, n_rows), dtype=bool)
    padded[:n_out, :n_in] = bits
    words = []
    for row in range(n_rows // events_per_cycle):
        for g in range(n_groups):
            for bank in range(events_per_cycle):
                column = padded[:, row * events_per_cycle + bank].reshape(n_groups, lanes)
                words.append(_bits_to_int(column[g]))
    return words


def chunk_rom_words(bits, lanes):
    """ROM words of a step layer fed ``lanes`` inputs at a time (after a folded layer): word
    ``g`` holds the weights from inputs ``g * lanes .. g * lanes + lanes - 1``, neuron ``j``'s
    in bits ``[j * lanes, (j + 1) * lanes)`` (inputs past ``n_in`` read as 0)."""
    bits = np.asarray(bits, dtype=bool)
    n_out, n_in = bits.shape
    n_groups = -(-n_in // lanes)
    padded = np.zeros((n_out, n_groups * lanes), dtype=bool)
    padded[:, :n_in] = bits
    return [_bits_to_int(padded[:, g * lanes:(g + 1) * lanes].ravel()) for g in range(n_groups)]


def row_rom_words(bits):
    """ROM words of a step layer: one word per output neuron, bit ``i`` is input ``i``."""
    return [_bits_to_int(row) for row in np.asarray(bits, dtype=bool)]


def hex_lines(words, width):
    """``$readmemh`` lines (one word per line, zero-padded to ``width`` bits)."""
    digits = -(-width // 4)
    return [f"{word:0{digits}x}" for word in words]


def pixel_beats(pixels, pixels_per_beat):
    """Pack one image's uint8 pixels into beats; the last beat is zero-padded.

    Returns a list of integers, pixel ``k`` of a beat in bits ``[8k, 8k + 8)``.
    """
    pixels = np.asarray(pixels, dtype=np.uint8)
    n_beats = -(-pixels.size // pixels_per_beat)
    padded = np.zeros(n_beats * pixels_per_beat, dtype=np.uint8)
    padded[: pixels.size] = pixels
    return [int.from_bytes(beat.tobytes(), "little")
            for beat in padded.reshape(n_beats, pixels_per_beat)]


def class_width(n_classes):
    """Bits needed for a class index in ``0 .. n_classes - 1`` (at least 1)."""
    return max(1, (n_classes - 1).bit_length())


def tdata_width(bits):
    """Width of an AXI4-Stream ``TDATA`` carrying a word of ``bits`` bits: whole bytes, the
    word in the low bits and the padding above it 0 (interconnect IP assumes byte lanes)."""
    return 8 * -(-bits // 8)


def result_fields(n_classes):
    """Ordered ``(name, width)`` fields of a result word, LSB first."""
    return [
        ("predicted", class_width(n_classes)),
        ("decision_step", STEP_WIDTH),
        ("fired", 1),
        ("error", 1),
    ]


def pack_result(n_classes, **values):
    """Pack result field values (see :func:`result_fields`) into an integer."""
    return pack_fields(result_fields(n_classes), **values)


def unpack_result(n_classes, word):
    """Unpack a result word into a dict of its fields."""
    return unpack_fields(result_fields(n_classes), word)


def debug_event_fields(hidden_sizes):
    """Ordered ``(name, width)`` fields of a hidden spike event word, LSB first.

    ``hidden_sizes`` lists the neuron counts of the hidden layers; ``step`` is the spike time.
    """
    return [
        ("neuron", class_width(max(hidden_sizes))),
        ("step", STEP_WIDTH),
        ("layer", class_width(len(hidden_sizes))),
    ]


def pack_fields(fields, **values):
    """Pack named values into an integer following ``fields`` (``(name, width)``, LSB first)."""
    word, shift = 0, 0
    for name, width in fields:
        value = int(values[name])
        if not 0 <= value < (1 << width):
            raise ValueError(f"field {name}={value} does not fit in {width} bits")
        word |= value << shift
        shift += width
    return word


def unpack_fields(fields, word):
    """Unpack an integer into a dict following ``fields`` (``(name, width)``, LSB first)."""
    values, shift = {}, 0
    for name, width in fields:
        values[name] = (int(word) >> shift) & ((1 << width) - 1)
        shift += width
    return values


# --- Weight-load stream (``weight_storage="ram"``) -------------------------------------------
#
# A weight load is one frame of words on ``w_axis`` (``tlast`` on the last word). Each word
# writes one storage row of one layer, selected by ``layer`` and ``kind``:
#
# * ``kind = WEIGHT_KIND_WEIGHTS``, layer 0 (the event-driven first hidden layer): ``address``
#   is a :func:`column_rom_words` address (``i * ceil(n_out / lanes) + g`` with one event per
#   cycle), ``data`` its word.
# * ``kind = WEIGHT_KIND_WEIGHTS``, later layers: ``address`` is neuron ``j``, ``data`` its row
#   (:func:`row_rom_words`: bit ``i`` is input ``i``); but the layer after a folded first layer
#   (``lanes < n_hidden``) takes :func:`chunk_rom_words`: ``address`` is the chunk ``g``.
# * ``kind = WEIGHT_KIND_THRESHOLD``: ``address`` is :func:`threshold_address` of neuron ``j``
#   (``j`` itself, but in a folded first layer), ``data`` its threshold.
#
# Unused high ``data`` bits are 0. Words may come in any order and any subset may be sent; the
# accelerator takes a weight frame only between images (it finishes the images it holds first
# and accepts no new pixel frame until the weight frame's ``tlast``).

#: ``kind`` of a weight-load word writing weights.
WEIGHT_KIND_WEIGHTS = 0
#: ``kind`` of a weight-load word writing a threshold.
WEIGHT_KIND_THRESHOLD = 1


def _lanes_of(sizes, lanes):
    n_hidden = sizes[1]
    return n_hidden if lanes == 0 else lanes


def threshold_lane_bits(lanes):
    """Bits of the lane field in a folded layer's threshold address: ``ceil(log2(lanes))``,
    at least one."""
    return max(1, (lanes - 1).bit_length())


def threshold_address(k, j, n_out, lanes):
    """The weight-load address of neuron ``j``'s threshold in layer ``k`` (``n_out`` neurons):
    ``j``, but in a folded first layer (``lanes < n_out``) its lane group ``j // lanes``
    above its lane ``j % lanes`` in :func:`threshold_lane_bits` bits."""
    if k != 0 or lanes >= n_out:
        return j
    return (j // lanes) << threshold_lane_bits(lanes) | j % lanes


def weight_stream_fields(sizes, lanes=0, events_per_cycle=1):
    """Ordered ``(name, width)`` fields of a weight-load word, LSB first.

    ``sizes`` is ``[n_in, n_hidden..., n_out]``; ``lanes`` and ``events_per_cycle`` as given to
    the generator (``lanes`` 0: all).
    """
    sizes = [int(n) for n in sizes]
    lanes = _lanes_of(sizes, lanes)
    groups = -(-sizes[1] // lanes)
    chunked = [sizes[2] * lanes] if lanes < sizes[1] else []
    data_width = max([lanes] + sizes[1:-1] + chunked
                     + [class_width(n_in) for n_in in sizes[:-1]])
    rows = -(-sizes[0] // events_per_cycle) * events_per_cycle
    depth = max([rows * groups, threshold_address(0, sizes[1] - 1, sizes[1], lanes) + 1]
                + sizes[1:])
    return [
        ("data", data_width),
        ("address", class_width(depth)),
        ("layer", class_width(len(sizes) - 1)),
        ("kind", 1),
    ]


def weight_stream_beats(network, lanes=0, events_per_cycle=1):
    """All the words of a weight frame that loads ``network`` (a list of integers).

    The order is layer by layer: weights, then thresholds. Send them with ``tlast`` on the last.
    """
    sizes = network.sizes
    fields = weight_stream_fields(sizes, lanes, events_per_cycle)
    lanes = _lanes_of(sizes, lanes)
    words = []
    for k, layer in enumerate(network.layers):
        if k == 0:
            rows = column_rom_words(layer.bits, lanes, events_per_cycle)
        elif k == 1 and lanes < sizes[1]:
            rows = chunk_rom_words(layer.bits, lanes)
        else:
            rows = row_rom_words(layer.bits)
        words += [pack_fields(fields, data=row, address=address, layer=k,
                              kind=WEIGHT_KIND_WEIGHTS) for address, row in enumerate(rows)]
        words += [pack_fields(fields, data=int(threshold), layer=k,
                              address=threshold_address(k, j, layer.n_out, lanes),
                              kind=WEIGHT_KIND_THRESHOLD)
                  for j, threshold in enumerate(layer.thresholds)]
    return words
