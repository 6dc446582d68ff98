"""The authors' reference weights (latent float weights and threshold factors) as a
:class:`~.network.Network`."""

import numpy as np

from .errors import UserError
from .network import Layer, Network

__all__ = ["load_arrays", "import_reference"]


def load_arrays(paths):
    """Read one ``.npy`` array per path, without pickle; a bad file raises naming it."""
    arrays = []
    for path in paths:
        try:
            arrays.append(np.load(path, allow_pickle=False))
        except FileNotFoundError:
            raise UserError(f"{path}: no such file") from None
        except (OSError, ValueError) as error:
            raise UserError(f"{path}: not a .npy array ({error})") from None
    return arrays


def import_reference(arrays, factors, metadata=None):
    """Build a :class:`Network` from the authors' latent weights and threshold factors.

    ``arrays[k]``: float ``(n_out, n_in, 1)`` (or ``(n_out, n_in)``), the latent weights of
    layer ``k``; ``factors[k]``: its learned threshold factor ``f``. Binary weight = sign
    (0 counts as +1); integer threshold = floor(100 / f).
    """
    if len(arrays) != len(factors):
        raise UserError(f"{len(arrays)} weight arrays but {len(factors)} factors")
    layers = []
    for k, (latent, factor) in enumerate(zip(arrays, factors, strict=True)):
        latent = np.asarray(latent)
        if latent.ndim == 3 and latent.shape[2] == 1:
            latent = latent[:, :, 0]
        if latent.ndim != 2 or not np.issubdtype(latent.dtype, np.floating):
            raise UserError(f"layer {k}: expected float weights shaped (n_out, n_in, 1), got "
                            f"{latent.dtype} {latent.shape}")
        if not np.all(np.isfinite(latent)):
            raise UserError(f"layer {k}: weights contain NaN or infinity")
        if not factor > 0:
            raise UserError(f"layer {k}: factor must be positive, got {factor}")
        signs = np.where(latent >= 0, 1, -1)
        threshold = int(np.floor(100 / factor))
        try:
            layers.append(Layer(signs, np.full(signs.shape[0], threshold)))
        except UserError as error:
            raise UserError(f"layer {k}: {error}") from None
    return Network(tuple(layers), metadata or {})
