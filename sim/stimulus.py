"""Random networks and images, and the results the hardware must give: the stimulus of the
amaranth.sim tests (``tests/``) and of the cocotb testbenches (``rtl_tests/``), which import it
as ``bs4nn.sim.stimulus`` inside the simulator.

Every function takes an explicit ``numpy.random.Generator`` and draws from nothing else, so a
seed replays a test exactly.
"""

import itertools

import numpy as np

from ..model.inference import infer
from ..model.network import Layer, Network

__all__ = ["POSITIVE", "ERROR_RESULT", "random_thresholds", "random_layer", "random_network",
           "random_images", "expected_results"]

#: The range the share of +1 weights of a random layer is drawn from: weights lean positive, so
#: most images make every layer spike, while some still end with no output spike.
POSITIVE = (0.55, 0.8)

#: The result of a malformed frame (the output layer documents it: error=1, all else 0).
ERROR_RESULT = {"predicted": 0, "decision_step": 0, "fired": 0, "error": 1}


def random_thresholds(rng, n_in, n_out):
    """int32 ``(n_out,)`` thresholds in ``0 .. max(1, n_in // 3)`` and below ``n_in``: low, so
    neurons fire often enough to be interesting."""
    thresholds = rng.integers(0, max(1, n_in // 3), size=n_out, endpoint=True)
    return np.minimum(thresholds, n_in - 1).astype(np.int32)


def random_layer(rng, n_in, n_out, positive=POSITIVE):
    """A random :class:`~bs4nn.model.network.Layer` of ``(n_out, n_in)`` signs.

    ``positive`` is the share of +1 weights, or a ``(low, high)`` range it is drawn from.
    """
    if isinstance(positive, tuple):
        positive = rng.uniform(*positive)
    signs = np.where(rng.random((n_out, n_in)) < positive, 1, -1).astype(np.int8)
    return Layer(signs, random_thresholds(rng, n_in, n_out))


def random_network(rng, sizes, positive=POSITIVE):
    """A random network of ``sizes`` (``[n_in, n_hidden..., n_out]``), layer by layer as
    :func:`random_layer` draws them."""
    layers = tuple(random_layer(rng, n_in, n_out, positive)
                   for n_in, n_out in itertools.pairwise(sizes))
    return Network(layers, {"origin": "random", "sizes": [int(n) for n in sizes]})


def random_images(rng, n, n_inputs, density=None):
    """uint8 ``(n, n_inputs)`` images: the extremes first, then random ones.

    The first three, when ``n`` allows, are all 0 (nothing spikes before ``MAX_STEP``: the
    fallback decision), all 255 (everything spikes at step 0) and all 1 (everything at step
    254, the last one). With ``density``, each later pixel is non-zero (1..255) with that
    probability. Without, each later image is one of: dense (every pixel random), sparse
    (5-40% non-zero) or saturated strokes as in MNIST (a fifth of the pixels at 250..255, so
    many of them share a step).
    """
    images = np.zeros((n, n_inputs), dtype=np.uint8)
    for k, value in enumerate((0, 255, 1)[:n]):
        images[k] = value
    for k in range(min(n, 3), n):
        if density is not None:
            mask = rng.random(n_inputs) < density
            images[k] = np.where(mask, rng.integers(1, 256, n_inputs), 0)
            continue
        kind = int(rng.integers(3))
        if kind == 0:
            images[k] = rng.integers(0, 256, n_inputs)
        elif kind == 1:
            mask = rng.random(n_inputs) < rng.uniform(0.05, 0.4)
            images[k] = np.where(mask, rng.integers(1, 256, n_inputs), 0)
        else:
            mask = rng.random(n_inputs) < 0.2
            images[k] = np.where(mask, rng.integers(250, 256, n_inputs), 0)
    return images


def expected_results(network, images):
    """The result fields (dicts, as ``packing.unpack_result`` gives them) the golden model
    gives for each of ``images`` (uint8 ``(n, n_inputs)``)."""
    inference = infer(network, images)
    return [{"predicted": int(inference.predicted[k]),
             "decision_step": int(inference.decision_step[k]),
             "fired": int(inference.fired[k]), "error": 0} for k in range(len(images))]
