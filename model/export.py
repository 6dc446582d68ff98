"""``$readmemh`` files of a network's ROMs, laid out as the generated ROMs read them."""

from pathlib import Path

from . import packing
from .errors import UserError
from .network import atomic_write

__all__ = ["export_hex"]


def export_hex(network, out_dir, lanes=0):
    """Write ``$readmemh`` files as the generated ROMs read them; returns the paths.

    ``layer0.hex``: one word per (input, lane group), see :func:`packing.column_rom_words`.
    ``layer{k}.hex`` for k > 0: one word per neuron, bit ``i`` for input ``i``.
    ``thresholds{k}.hex``: one threshold per neuron.
    """
    first = network.layers[0]
    if isinstance(lanes, bool) or not isinstance(lanes, int) or not 0 <= lanes <= first.n_out:
        raise UserError(f"lanes must be between 1 and {first.n_out} (0 means all), "
                        f"got {lanes!r}")
    lanes = lanes or first.n_out
    paths = []
    for k, layer in enumerate(network.layers):
        if k == 0:
            words, width = packing.column_rom_words(layer.bits, lanes), lanes
        else:
            words, width = packing.row_rom_words(layer.bits), layer.n_in
        threshold_width = max(1, int(layer.n_in - 1).bit_length())
        for name, lines in ((f"layer{k}.hex", packing.hex_lines(words, width)),
                            (f"thresholds{k}.hex",
                             packing.hex_lines(layer.thresholds.tolist(), threshold_width))):
            path = Path(out_dir) / name
            with atomic_write(path, "w") as f:
                f.write("\n".join(lines) + "\n")
            paths.append(path)
    return paths
