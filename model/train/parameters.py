"""The trainer's parameters, their initialisation, the Adam step and the exact forward pass.

The latent parameters are real; the network they stand for (:meth:`Parameters.layer`,
:func:`to_network`) has their signs as weights and their rounded values as thresholds, and
:func:`forward` runs it through :func:`~bs4nn.model.inference.layer_forward`, the very
function inference uses, so the training accuracy is that of the deployed network.
"""

import dataclasses

import numpy as np

from ..inference import EventGroups, LayerResult, encode, layer_forward
from ..network import MAX_STEP, NO_SPIKE, Layer, Network

__all__ = ["Parameters", "LayerState", "init_parameters", "to_network", "adam_update",
           "adam_step", "adam_correction", "forward"]


@dataclasses.dataclass
class Parameters:
    """Latent real parameters of every layer plus their Adam moments.

    ``weights[k]``: float32 ``(n_out_k, n_in_k)`` in ``[-1, 1]``, deployed as their sign.
    ``thresholds[k]``: float64 ``(n_out_k,)``, deployed rounded and clipped to ``0..n_in-1``.
    ``averages``: when kept (:meth:`update_averages`), the exponential moving averages of the
    weights and thresholds, by the same names as in :meth:`arrays` (``w0``, ``t0``, …).
    """

    weights: list
    thresholds: list
    moments: dict
    step: int = 0
    averages: dict | None = None

    def signs(self, k):
        return np.where(self.weights[k] >= 0, 1, -1).astype(np.float32)

    def integer_thresholds(self, k):
        n_in = self.weights[k].shape[1]
        return np.clip(np.rint(self.thresholds[k]), 0, n_in - 1)

    def layer(self, k):
        """The deployed :class:`~bs4nn.model.network.Layer` ``k``."""
        return Layer(self.signs(k).astype(np.int8), self.integer_thresholds(k).astype(np.int32))

    def update_averages(self, decay):
        """One step of the moving averages (started at the current values): each average
        moves ``1 - decay`` of the way to its parameter."""
        if self.averages is None:
            self.averages = {name: np.copy(value) for name, value in self._values().items()}
            return
        for name, value in self._values().items():
            average = self.averages[name]
            average *= decay
            average += (1 - decay) * value

    def averaged(self):
        """The parameters whose weights and thresholds are the moving averages (moments
        shared, no averages of their own)."""
        n_layers = len(self.weights)
        return Parameters([self.averages[f"w{k}"] for k in range(n_layers)],
                          [self.averages[f"t{k}"] for k in range(n_layers)],
                          self.moments, self.step)

    def _values(self):
        """The weights and thresholds by name (``w0``, ``t0``, …), as checkpoints hold them."""
        return {f"{name}{k}": value for k in range(len(self.weights))
                for name, value in (("w", self.weights[k]), ("t", self.thresholds[k]))}

    def arrays(self):
        """Flat name → array mapping for checkpoints."""
        out = {"step": np.array(self.step), **self._values()}
        for k in range(len(self.weights)):
            for name in ("w", "t"):
                for moment in ("m", "v"):
                    out[f"{moment}{name}{k}"] = self.moments[f"{moment}{name}{k}"]
        for name, average in (self.averages or {}).items():
            out[f"average_{name}"] = average
        return out

    @classmethod
    def from_arrays(cls, arrays, n_layers):
        weights = [arrays[f"w{k}"] for k in range(n_layers)]
        thresholds = [arrays[f"t{k}"] for k in range(n_layers)]
        moments = {f"{m}{n}{k}": arrays[f"{m}{n}{k}"]
                   for k in range(n_layers) for n in ("w", "t") for m in ("m", "v")}
        averages = {name[len("average_"):]: value for name, value in arrays.items()
                    if name.startswith("average_")}
        return cls(weights, thresholds, moments, int(arrays["step"]), averages or None)


def init_parameters(sizes, images, rng, firing_fraction=0.5, scale=1.0):
    """Random latent weights; thresholds set so each neuron fires on ``firing_fraction`` of
    ``images`` (a uint8 ``(n, n_in)`` sample), layer by layer (one fraction, or one per
    layer)."""
    weights, thresholds = [], []
    spike_times = encode(images)
    n_layers = len(sizes) - 1
    fractions = np.broadcast_to(firing_fraction, (n_layers,))
    for k in range(n_layers):
        n_in, n_out = sizes[k], sizes[k + 1]
        w = rng.uniform(-scale, scale, size=(n_out, n_in)).astype(np.float32)
        groups = EventGroups.build(spike_times, MAX_STEP - 1)
        potential = groups.potentials(np.where(w >= 0, 1, -1).astype(np.float32))
        peak = np.maximum.reduceat(potential, groups.image_start, axis=0)
        # A neuron fires on an image when its peak potential exceeds the threshold.
        theta = np.clip(np.quantile(peak, 1 - fractions[k], axis=0) - 0.5, 0, n_in - 1)
        weights.append(w)
        thresholds.append(np.rint(theta).astype(np.float64))
        if k < n_layers - 1:
            layer = Layer(np.where(w >= 0, 1, -1).astype(np.int8),
                          thresholds[-1].astype(np.int32))
            spike_times = layer_forward(spike_times, layer, is_output=False).spike_times
    moments = {}
    for k, (w, t) in enumerate(zip(weights, thresholds, strict=True)):
        for m in ("m", "v"):
            moments[f"{m}w{k}"] = np.zeros_like(w)
            moments[f"{m}t{k}"] = np.zeros_like(t)
    return Parameters(weights, thresholds, moments)


def to_network(parameters, metadata=None):
    """The deployed :class:`~bs4nn.model.network.Network`: signs and integer thresholds."""
    layers = tuple(parameters.layer(k) for k in range(len(parameters.weights)))
    return Network(layers, metadata or {})


def adam_correction(step, beta1=0.9, beta2=0.999):
    """Adam's bias correction of the step size at step ``step`` (counted from 1)."""
    return np.sqrt(1 - beta2 ** step) / (1 - beta1 ** step)


def adam_step(value, grad, m, v, rate, beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step of ``value`` in place, with its moments ``m`` and ``v``; ``rate`` is the
    learning rate times :func:`adam_correction`."""
    m *= beta1
    m += (1 - beta1) * grad
    v *= beta2
    v += (1 - beta2) * grad * grad
    value -= rate * m / (np.sqrt(v) + eps)


def adam_update(parameters, weight_grads, threshold_grads, lr, threshold_lr):
    """One Adam step on all layers; latent weights are clipped to ``[-1, 1]``."""
    parameters.step += 1
    correction = adam_correction(parameters.step)
    for k in range(len(parameters.weights)):
        for name, value, grad, rate in (("w", parameters.weights[k], weight_grads[k], lr),
                                        ("t", parameters.thresholds[k], threshold_grads[k],
                                         threshold_lr)):
            adam_step(value, grad, parameters.moments[f"m{name}{k}"],
                      parameters.moments[f"v{name}{k}"], rate * correction)
        np.clip(parameters.weights[k], -1, 1, out=parameters.weights[k])
        n_in = parameters.weights[k].shape[1]
        np.clip(parameters.thresholds[k], 0, n_in - 1, out=parameters.thresholds[k])


@dataclasses.dataclass(frozen=True)
class LayerState(LayerResult):
    """One layer's forward pass over a batch, kept for the backward pass: its
    :class:`~bs4nn.model.inference.LayerResult` (input ``groups``, ``potential`` after each
    group, crossings) and ``kept``, bool ``(n, n_out)``, the spikes passed on to the next
    layer (``None``: all of them)."""

    kept: np.ndarray | None = None


def forward(parameters, pixels, dropout=0.0, rng=None):
    """Exact forward pass of uint8 ``(n, 784)`` pixels; a list of :class:`LayerState`.

    ``dropout`` > 0 (training only) drops each hidden spike with that probability before
    the next layer sees it, drawn from ``rng``.
    """
    spike_times = encode(pixels)
    states = []
    n_layers = len(parameters.weights)
    for k in range(n_layers):
        result = layer_forward(spike_times, parameters.layer(k), is_output=k == n_layers - 1)
        spike_times = result.spike_times
        kept = None
        if dropout > 0 and k < n_layers - 1:
            kept = rng.random(spike_times.shape) >= dropout
            spike_times = np.where(kept, spike_times, NO_SPIKE).astype(spike_times.dtype)
        states.append(LayerState(**{field.name: getattr(result, field.name)
                                    for field in dataclasses.fields(result)}, kept=kept))
    return states
