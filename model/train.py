"""Training of BS4NN networks: temporal backpropagation through time-to-first-spike neurons.

The forward pass is the exact integer network (``sign`` of the latent weights, thresholds
rounded to integers), evaluated event-driven with :class:`~.inference.EventGroups`, so the
training accuracy is that of the deployed network. The backward pass follows BS4NN
(Kheradpisheh et al. 2021): a neuron's spike time moves by ``-1`` per unit of potential
(``ds_j / dV_j = -1``), its potential depends on the inputs that spiked before it
(``dV_j / dw_ji = [s_i < s_j]``), and an input's spike time shifts the neuron's by its weight
(``ds_j / ds_i = sign(w_ji) [s_i < s_j]``). On top of the authors' rule:

* loss: cross-entropy of ``softmax(-s' / T)`` over the output spike times refined by the
  decision's tie-break, ``s' = s - λ V`` (``V`` the potential at the crossing); a neuron that
  never fires counts as firing at 256, so a silent network still pushes the true class to
  fire;
* near misses: a last-hidden-layer neuron that did not spike before the decision but came
  within a few units of its threshold gets part of the error it would have had, had it
  spiked in time (without this, half the hidden layer can fall silent for good);
* Adam on the latent weights (clipped to ``[-1, 1]``, straight-through sign) and on per-neuron
  real thresholds (rounded in the forward pass, ``ds_j / dθ_j = +1``), minibatches, cosine
  learning-rate decay, optional random shifts of the training images;
* thresholds initialised from the data so that each neuron fires on a set fraction of images;
* after training, the output thresholds are calibrated for exact strict accuracy on training
  images (kept only if the validation accuracy does not drop).

Every gradient is event-driven: for the event groups ``g`` (image, step) of a layer's inputs,
``A[g, j] = δ_{b(g), j} [step_g < s_{b(g), j}]`` gives the weight gradient
``-(membershipᵀ A)ᵀ`` and the input error ``(A sign(W))[g, i]`` for the inputs ``i`` of ``g``;
no ``(images, 256, neurons)`` tensor is ever built.

After every epoch the binarized network is evaluated exactly with :func:`.inference.infer` on
the validation split (and a train subset); the epoch with the best validation accuracy is kept
and finally evaluated once on the test split. Two further ideas stay available but off by
default, as they did not help when measured: ``--recruit-strength`` (push rarely used hidden
neurons to fire: decisions drift ever earlier and accuracy falls) and ``--window`` (error
for inputs spiking just after the neuron).
"""

import dataclasses
import json
import os
import shlex
import time
from pathlib import Path

import numpy as np

from . import data
from .errors import UserError
from .inference import EventGroups, crossings, decide, encode, infer
from .network import MAX_STEP, NO_SPIKE, Layer, Network, atomic_write

__all__ = ["TrainConfig", "Parameters", "add_arguments", "run", "train", "forward",
           "backward", "init_parameters", "to_network", "evaluate", "shift_images", "flip_images",
           "calibrate_output_thresholds", "CHECKPOINT_NAME"]

DEFAULT_HIDDEN = {"mnist": [600], "fashion-mnist": [1000]}
CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_VERSION = 1
N_CLASSES = 10
IMAGE_SIDE = 28


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run's result (recorded in the weights file)."""

    dataset: str = "mnist"
    hidden: tuple = (600,)
    epochs: int = 15
    batch_size: int = 100
    lr: float = 0.01
    threshold_lr: float = 0.03
    temperature: float = 1.0
    potential_weight: float = 0.2
    margin: float = 0.0
    recruit_rate: float = 0.05
    recruit_strength: float = 0.0
    window: float = 0.0
    near_miss: float = 2.0
    init_scale: float = 0.1
    firing_fraction: float = 0.1
    shift: int = 0
    flip: bool = False
    dropout: float = 0.0
    seed: int = 0
    train_subset: int = 0
    validation_subset: int = 0
    calibrate: int = 10000
    calibrate_split: str = "train"
    eval_train: int = 2000
    loss: str = "snapshot"
    beta: float = 0.25
    surrogate: float = 3.0
    initial_thresholds: tuple = (20.0, 15.0)

    @property
    def sizes(self):
        return [data.IMAGE_SIZE, *self.hidden, N_CLASSES]

    def command(self):
        """The ``bs4nn train`` command line reproducing this configuration."""
        words = ["bs4nn", "train", "--dataset", self.dataset, "--hidden",
                 *map(str, self.hidden), "--epochs", str(self.epochs),
                 "--batch-size", str(self.batch_size), "--lr", repr(self.lr),
                 "--threshold-lr", repr(self.threshold_lr),
                 "--temperature", repr(self.temperature),
                 "--potential-weight", repr(self.potential_weight),
                 "--margin", repr(self.margin), "--recruit-rate", repr(self.recruit_rate),
                 "--recruit-strength", repr(self.recruit_strength),
                 "--window", repr(self.window), "--near-miss", repr(self.near_miss),
                 "--init-scale", repr(self.init_scale),
                 "--firing-fraction", repr(self.firing_fraction), "--shift", str(self.shift),
                 "--seed", str(self.seed)]
        if self.flip:
            words += ["--flip"]
        if self.dropout:
            words += ["--dropout", repr(self.dropout)]
        if self.train_subset:
            words += ["--train-subset", str(self.train_subset)]
        if self.validation_subset:
            words += ["--validation-subset", str(self.validation_subset)]
        words += ["--calibrate", str(self.calibrate)]
        if self.calibrate_split != "train":
            words += ["--calibrate-split", self.calibrate_split]
        words += ["--loss", self.loss]
        if self.loss == "snapshot":
            words += ["--beta", repr(self.beta), "--surrogate", repr(self.surrogate),
                      "--initial-thresholds", *map(repr, self.initial_thresholds)]
        return shlex.join(words)

    def describe(self):
        if self.loss == "snapshot":
            return (f"exact integer forward; loss: cross-entropy of softmax({self.beta} V) over "
                    f"the output potentials V at the decision's crossing step (the final "
                    f"potentials when no output fires), straight-through to the output weights; "
                    f"hidden neurons get dL/dh through the output signs times a surrogate "
                    f"exp(-|V - θ - 1/2| / {self.surrogate}) / (2·{self.surrogate}) of their "
                    f"potential when they fired (or just before the decision); thresholds "
                    f"start at {list(self.initial_thresholds)} (hidden, output), threshold "
                    f"lr={self.threshold_lr}; Adam lr={self.lr} on latent weights "
                    f"(init U(-{self.init_scale},{self.init_scale}), clipped to [-1,1], "
                    f"straight-through sign), cosine decay, batch {self.batch_size}, random "
                    f"shifts of ±{self.shift} px{self._regularization()}; best validation "
                    f"epoch, then {self._calibration()}")
        return (f"BS4NN temporal backprop, exact integer forward; loss: cross-entropy of "
                f"softmax(-s'/T), T={self.temperature}, s' = s - {self.potential_weight} V "
                f"(V: potential at the crossing, the decision's tie-break), true class "
                f"handicapped by {self.margin} steps; hidden neurons taking part in < "
                f"{self.recruit_rate:.0%} of a batch's decisions pushed to fire (strength "
                f"{self.recruit_strength}); hidden error window {self.window} steps; hidden "
                f"neurons missing the decision by a potential gap g get exp(-g/{self.near_miss}) "
                f"of the error (0: off); Adam "
                f"lr={self.lr} on latent weights (init U(-{self.init_scale},{self.init_scale}), "
                f"clipped to [-1,1], straight-through sign), threshold lr={self.threshold_lr} "
                f"(per-neuron, rounded, init so each neuron fires on "
                f"{self.firing_fraction:.0%} of images), cosine decay, batch "
                f"{self.batch_size}, random shifts of ±{self.shift} px"
                f"{self._regularization()}; best validation "
                f"epoch, then {self._calibration()}")

    def _calibration(self):
        if self.calibrate_split == "validation":
            return ("output thresholds calibrated on the first half of the validation split "
                    "(kept if the second half's accuracy does not drop)")
        return (f"output thresholds calibrated on {self.calibrate} training images (kept if "
                f"validation does not drop)")

    def _regularization(self):
        return ((", random horizontal flips" if self.flip else "")
                + (f", hidden spikes dropped with probability {self.dropout} in training"
                   if self.dropout else ""))


# ----------------------------------------------------------------------------- parameters

@dataclasses.dataclass
class Parameters:
    """Latent real parameters of every layer plus their Adam moments.

    ``weights[k]``: float32 ``(n_out_k, n_in_k)`` in ``[-1, 1]``, deployed as their sign.
    ``thresholds[k]``: float64 ``(n_out_k,)``, deployed rounded and clipped to ``0..n_in-1``.
    """

    weights: list
    thresholds: list
    moments: dict
    step: int = 0

    def signs(self, k):
        return np.where(self.weights[k] >= 0, 1, -1).astype(np.float32)

    def integer_thresholds(self, k):
        n_in = self.weights[k].shape[1]
        return np.clip(np.rint(self.thresholds[k]), 0, n_in - 1)

    def arrays(self):
        """Flat name → array mapping for checkpoints."""
        out = {"step": np.array(self.step)}
        for k in range(len(self.weights)):
            out[f"w{k}"], out[f"t{k}"] = self.weights[k], self.thresholds[k]
            for name in ("w", "t"):
                for moment in ("m", "v"):
                    out[f"{moment}{name}{k}"] = self.moments[f"{moment}{name}{k}"]
        return out

    @classmethod
    def from_arrays(cls, arrays, n_layers):
        weights = [arrays[f"w{k}"] for k in range(n_layers)]
        thresholds = [arrays[f"t{k}"] for k in range(n_layers)]
        moments = {f"{m}{n}{k}": arrays[f"{m}{n}{k}"]
                   for k in range(n_layers) for n in ("w", "t") for m in ("m", "v")}
        return cls(weights, thresholds, moments, int(arrays["step"]))


def init_parameters(sizes, images, rng, firing_fraction=0.5, scale=1.0):
    """Random latent weights; thresholds set so each neuron fires on ``firing_fraction`` of
    ``images`` (a uint8 ``(n, n_in)`` sample), layer by layer (one fraction, or one per
    layer)."""
    weights, thresholds = [], []
    spike_times = encode(images)
    fractions = np.broadcast_to(firing_fraction, (len(sizes) - 1,))
    for k in range(len(sizes) - 1):
        n_in, n_out = sizes[k], sizes[k + 1]
        w = rng.uniform(-scale, scale, size=(n_out, n_in)).astype(np.float32)
        groups = EventGroups.build(spike_times, MAX_STEP - 1)
        potential = groups.potentials(np.where(w >= 0, 1, -1).astype(np.float32))
        peak = np.maximum.reduceat(potential, groups.image_start, axis=0)
        # A neuron fires on an image when its peak potential exceeds the threshold.
        theta = np.clip(np.quantile(peak, 1 - fractions[k], axis=0) - 0.5, 0, n_in - 1)
        weights.append(w)
        thresholds.append(np.rint(theta).astype(np.float64))
        spike_times = _layer_forward(spike_times, w, thresholds[-1], MAX_STEP - 1).spike_times
    moments = {}
    for k, (w, t) in enumerate(zip(weights, thresholds, strict=True)):
        for m in ("m", "v"):
            moments[f"{m}w{k}"] = np.zeros_like(w)
            moments[f"{m}t{k}"] = np.zeros_like(t)
    return Parameters(weights, thresholds, moments)


def to_network(parameters, metadata=None):
    """The deployed :class:`~.network.Network`: signs and integer thresholds."""
    layers = tuple(Layer(parameters.signs(k).astype(np.int8),
                         parameters.integer_thresholds(k).astype(np.int32))
                   for k in range(len(parameters.weights)))
    return Network(layers, metadata or {})


# ----------------------------------------------------------------------------- forward

@dataclasses.dataclass(frozen=True)
class LayerState:
    """One layer's forward pass over a batch, kept for the backward pass.

    ``groups``: the :class:`EventGroups` of its inputs; ``spike_times`` int16 ``(n, n_out)``;
    ``crossing_potential``/``final_potential`` int ``(n, n_out)``; ``potential`` int16
    ``(n_groups, n_out)``, the potential after each group; ``kept`` bool ``(n, n_out)``, the
    spikes passed on to the next layer (``None``: all of them).
    """

    groups: EventGroups
    spike_times: np.ndarray
    crossing_potential: np.ndarray
    final_potential: np.ndarray
    potential: np.ndarray
    kept: np.ndarray | None = None


def _layer_forward(spike_times, weights, thresholds, last_step):
    """Exact integer forward of one layer (the rule of :func:`.inference.layer_forward`)."""
    n_in = weights.shape[1]
    signs = np.where(weights >= 0, 1, -1).astype(np.int16)
    groups = EventGroups.build(spike_times, last_step)
    potential = groups.potentials(signs)
    result = crossings(groups, potential, np.clip(np.rint(thresholds), 0, n_in - 1))
    return LayerState(groups, result.spike_times, result.crossing_potential,
                      result.final_potential, potential)


def forward(parameters, pixels, dropout=0.0, rng=None):
    """Exact forward pass of uint8 ``(n, 784)`` pixels; a list of :class:`LayerState`.

    ``dropout`` > 0 (training only) drops each hidden spike with that probability before
    the next layer sees it, drawn from ``rng``.
    """
    spike_times = encode(pixels)
    states = []
    n_layers = len(parameters.weights)
    for k in range(n_layers):
        # Hidden inputs at MAX_STEP can only cause a crossing at MAX_STEP (no spike).
        last_step = MAX_STEP if k == n_layers - 1 else MAX_STEP - 1
        state = _layer_forward(spike_times, parameters.weights[k], parameters.thresholds[k],
                               last_step)
        spike_times = state.spike_times
        if dropout > 0 and k < n_layers - 1:
            kept = rng.random(spike_times.shape) >= dropout
            state = dataclasses.replace(state, kept=kept)
            spike_times = np.where(kept, spike_times, NO_SPIKE).astype(spike_times.dtype)
        states.append(state)
    return states


def effective_times(output, potential_weight):
    """Spike times refined by the decision's tie-break: ``s - λ V``, with ``V`` the potential
    at the crossing (the final potential for a neuron that never fires), so that among
    neurons spiking together the one the decision rule picks comes first."""
    fired = output.spike_times < NO_SPIKE
    potential = np.where(fired, output.crossing_potential, output.final_potential)
    return output.spike_times - potential_weight * potential.astype(np.float64)


def spike_loss(spike_times, labels, temperature, margin=0.0):
    """Cross-entropy of ``softmax(-s / T)`` with the true class handicapped by ``margin``
    steps (it must win by that much): ``(mean loss, dL/ds (n, n_classes))``."""
    n = labels.size
    spike_times = spike_times.astype(np.float64)
    spike_times[np.arange(n), labels] += margin
    logits = -spike_times / temperature
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(probabilities[np.arange(n), labels] + 1e-12))
    target = np.zeros_like(probabilities)
    target[np.arange(n), labels] = 1
    return loss, -(probabilities - target) / (temperature * n)


# ----------------------------------------------------------------------------- backward

def recruitment(states, target_rate, strength):
    """Extra ``dL/ds`` for hidden neurons that take part in too few decisions.

    A hidden neuron takes part in an image's decision when it spikes before the earliest
    output spike. One that does so on fewer than ``target_rate`` of the batch is pushed to
    fire earlier (``dL/ds = strength / n`` on each image it missed); otherwise it could stay
    silent for good, as a neuron without spikes receives no error. Returns one
    ``(n, n_out_k)`` array per layer (zeros for the output layer).
    """
    decision = states[-1].spike_times.min(axis=1)
    pushes = []
    for state in states[:-1]:
        missed = state.spike_times >= decision[:, None]
        starved = missed.mean(axis=0) > 1 - target_rate
        pushes.append(np.where(missed & starved, strength / missed.shape[0], 0.0))
    pushes.append(np.zeros(states[-1].spike_times.shape))
    return pushes


def near_misses(parameters, states, scale):
    """Weights of the error passed to last-hidden-layer neurons that missed the decision.

    A neuron that did not spike before the decision (``t*``, the earliest output spike) gets
    no error through its spikes. When its potential came within a few units of its threshold
    while the decision could still see it (up to step ``t* - 2``), it is treated as if it had
    spiked just in time, at ``t* - 1``, weighted by ``exp(-gap / scale)`` (the idea of the
    straight-through estimator of binary networks).

    Returns ``(weight (n, n_hidden), effective spike times (n, n_hidden))``.
    """
    k = len(states) - 2
    hidden, output = states[k], states[-1]
    decision = output.spike_times.min(axis=1).astype(np.int32)
    groups = hidden.groups
    visible = groups.step <= (decision - 2)[groups.image_of_group]
    lowest = np.iinfo(np.int16).min
    peak = np.maximum.reduceat(np.where(visible[:, None], hidden.potential, lowest),
                               groups.image_start, axis=0)
    gap = parameters.integer_thresholds(k) - peak
    missed = hidden.spike_times >= decision[:, None]
    weight = np.where(missed, np.exp(-np.maximum(gap, 0) / scale), 0.0)
    return weight, np.where(missed, decision[:, None] - 1, hidden.spike_times)


def backward(parameters, states, d_spikes, window=0.0, pushes=None, near_miss=0.0):
    """Gradients ``(weight_grads, threshold_grads)`` from ``dL/ds`` of the output layer
    (plus ``pushes``, extra ``dL/ds`` per layer, see :func:`recruitment`; ``near_miss``
    > 0 adds :func:`near_misses` with that scale).

    ``window`` (steps) widens the error passed to a layer's inputs: an input that spiked
    ``d >= 0`` steps after the neuron still receives ``exp(-(d + 1) / window)`` of it, so
    neurons that fire just too late to count are recruited (0: the hard rule).
    """
    n_layers = len(states)
    weight_grads, threshold_grads = [None] * n_layers, [None] * n_layers
    delta = d_spikes
    spike_times = states[-1].spike_times
    missed_weight = None
    if near_miss > 0 and n_layers > 1:
        missed_weight, missed_times = near_misses(parameters, states, near_miss)
    for k in reversed(range(n_layers)):
        if pushes is not None:
            delta = delta + pushes[k]
        state = states[k]
        groups = state.groups
        image = groups.image_of_group
        # Inputs in group g count towards neuron j's crossing when they spiked before it.
        before = groups.step[:, None] < spike_times[image]
        influence = delta.astype(np.float32)[image]
        influence *= before
        weight_grads[k] = -np.asarray(groups.membership.T @ influence).T
        threshold_grads[k] = delta.sum(axis=0)
        if k == 0:
            break
        if window > 0:
            lateness = (groups.step[:, None] - spike_times[image] + 1).astype(np.float32)
            influence = delta.astype(np.float32)[image] * np.exp(
                -np.maximum(lateness, 0) / window)
        through = influence @ parameters.signs(k)  # (n_groups, n_in)
        membership = groups.membership
        rows = np.repeat(np.arange(membership.shape[0]), np.diff(membership.indptr))
        cols = membership.indices
        output_delta = delta
        delta = np.zeros((state.spike_times.shape[0], membership.shape[1]), np.float32)
        delta[image[rows], cols] = through[rows, cols]
        spike_times = states[k - 1].spike_times
        if missed_weight is not None and k == n_layers - 1:
            # Spiking at t* - 1, the neuron would have reached every output neuron.
            delta += missed_weight * (output_delta @ parameters.signs(k))
            spike_times = missed_times
    return weight_grads, threshold_grads


# ----------------------------------------------------------------------------- snapshot loss

def _potential_at(state, image_step):
    """Each neuron's potential after the last input group at or before ``image_step``.

    ``image_step`` is int ``(n,)`` or ``(n, n_out)``; returns float32 of its shape (0 when no
    input spiked by then).
    """
    groups = state.groups
    stride = NO_SPIKE + 1
    keys = groups.image_of_group * stride + groups.step
    n = groups.image_start.size
    step = np.asarray(image_step, dtype=np.int64)
    image = np.arange(n).reshape((n,) + (1,) * (step.ndim - 1))
    group = np.searchsorted(keys, image * stride + step, side="right") - 1
    valid = (group >= groups.image_start.reshape(image.shape)) & (step >= 0)
    safe = np.where(valid, group, 0)
    if step.ndim == 1:
        values = state.potential[safe]
        valid = valid[:, None]
    else:
        values = state.potential[safe, np.arange(step.shape[1])]
    return np.where(valid, values, 0).astype(np.float32)


def snapshot_gradients(parameters, states, labels, beta, surrogate):
    """Loss and gradients of the snapshot loss: ``(loss, weight_grads, threshold_grads)``.

    The decision looks at the output potentials ``V`` at the crossing step ``k*`` of the
    earliest output spike (step 255 when none fires); the winner is their argmax (for equal
    thresholds), so the loss is the cross-entropy of ``softmax(beta V)``, as in a binary
    network. ``V_j = Σ_h sign(w_jh) [s_h <= k*]``: the output gradient is straight-through.
    A neuron of layer ``k`` is seen by layer ``k + 1`` at step ``T_{k+1}`` (``T_out = k*``,
    one step earlier per layer down): it counts when it crossed by ``T_k = T_{k+1} - 1``,
    judged on its potential at ``min(crossing, T_k)`` through a Laplace surrogate of width
    ``surrogate``. Weight gradients are event-driven (``membershipᵀ A``, as in
    :func:`backward`).
    """
    n = labels.size
    output = states[-1]
    decision = np.minimum(output.spike_times.min(axis=1).astype(np.int64) - 1, MAX_STEP)
    potential = _potential_at(output, decision)
    logits = beta * potential
    logits -= logits.max(axis=1, keepdims=True)
    probabilities = np.exp(logits)
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    loss = -float(np.mean(np.log(probabilities[np.arange(n), labels] + 1e-12)))
    d_potential = probabilities
    d_potential[np.arange(n), labels] -= 1
    d_potential *= beta / n
    n_layers = len(states)
    weight_grads, threshold_grads = [None] * n_layers, [None] * n_layers
    threshold_grads[-1] = np.zeros(output.spike_times.shape[1])
    seen_at = decision  # T_k per image: the step at which layer k's neurons are looked at
    delta = d_potential.astype(np.float32)
    for k in reversed(range(n_layers)):
        state = states[k]
        groups = state.groups
        image = groups.image_of_group
        if k == n_layers - 1:
            visible = (groups.step[:, None] <= seen_at[image, None])
        else:
            crossing = state.spike_times.astype(np.int64) - 1
            judged_at = np.minimum(crossing, seen_at[:, None])
            gap = _potential_at(state, judged_at) - parameters.integer_thresholds(k) - 0.5
            delta = delta * np.exp(-np.abs(gap) / surrogate) / (2 * surrogate)
            threshold_grads[k] = -delta.sum(axis=0)
            visible = groups.step[:, None] <= judged_at[image]
        influence = delta[image] * visible
        weight_grads[k] = np.asarray(groups.membership.T @ influence).T
        if k == 0:
            break
        delta = delta @ parameters.signs(k)
        if states[k - 1].kept is not None:
            delta *= states[k - 1].kept  # a dropped spike reached no neuron
        seen_at = seen_at - 1
    return loss, weight_grads, threshold_grads


def adam_update(parameters, weight_grads, threshold_grads, lr, threshold_lr,
                beta1=0.9, beta2=0.999, eps=1e-8):
    """One Adam step on all layers; latent weights are clipped to ``[-1, 1]``."""
    parameters.step += 1
    t = parameters.step
    correction = np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t)
    for k in range(len(parameters.weights)):
        for name, value, grad, rate in (("w", parameters.weights[k], weight_grads[k], lr),
                                        ("t", parameters.thresholds[k], threshold_grads[k],
                                         threshold_lr)):
            m, v = parameters.moments[f"m{name}{k}"], parameters.moments[f"v{name}{k}"]
            m *= beta1
            m += (1 - beta1) * grad
            v *= beta2
            v += (1 - beta2) * grad * grad
            value -= (rate * correction) * m / (np.sqrt(v) + eps)
        np.clip(parameters.weights[k], -1, 1, out=parameters.weights[k])
        n_in = parameters.weights[k].shape[1]
        np.clip(parameters.thresholds[k], 0, n_in - 1, out=parameters.thresholds[k])


def flip_images(images, rng):
    """Mirror a random half of the 28 x 28 ``images`` left to right."""
    flipped = rng.random(images.shape[0]) < 0.5
    out = images.reshape(-1, IMAGE_SIDE, IMAGE_SIDE).copy()
    out[flipped] = out[flipped, :, ::-1]
    return out.reshape(images.shape)


def shift_images(images, rng, max_shift):
    """Shift each 28 x 28 image by a random ``-max_shift..max_shift`` pixels in x and y."""
    if max_shift == 0:
        return images
    n = images.shape[0]
    padded = np.zeros((n, IMAGE_SIDE + 2 * max_shift, IMAGE_SIDE + 2 * max_shift), np.uint8)
    padded[:, max_shift:-max_shift, max_shift:-max_shift] = images.reshape(n, IMAGE_SIDE,
                                                                          IMAGE_SIDE)
    dy, dx = rng.integers(0, 2 * max_shift + 1, size=(2, n))
    rows = dy[:, None] + np.arange(IMAGE_SIDE)
    cols = dx[:, None] + np.arange(IMAGE_SIDE)
    out = padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return out.reshape(n, -1)


# ----------------------------------------------------------------------------- evaluation

def evaluate(network, images, labels):
    """Exact figures of ``network``: strict/lenient accuracy, mean decision step (256 counted
    for no output spike), the fraction of images with no output spike and, per hidden layer,
    the neurons silent on every image (they take no part in any decision)."""
    result = infer(network, images)
    return {"strict": result.strict_accuracy(labels),
            "lenient": result.lenient_accuracy(labels),
            "mean_step": float(np.mean(result.decision_step)),
            "no_fire": float(np.mean(~result.fired)),
            "silent": [int(np.sum(np.all(times == NO_SPIKE, axis=0)))
                       for times in result.spike_times[:-1]]}


def calibrate_output_thresholds(network, images, labels, radius=8, rounds=3):
    """Tune the output layer's integer thresholds for exact strict accuracy on ``images``.

    The output potentials do not depend on the thresholds, and a neuron's crossing depends
    only on its own threshold, so every candidate crossing is computed once; coordinate
    ascent then moves one threshold at a time (within ``radius`` of the current one) to the
    value with the most correct decisions. Returns ``(network, accuracy before, after)``.
    """
    *hidden_layers, output = network.layers
    hidden_network = Network(tuple(hidden_layers)) if hidden_layers else None
    if hidden_network is None:
        spike_times = encode(images)
    else:
        # infer works in chunks; the last hidden layer's spike times feed the output layer.
        spike_times = infer(hidden_network, images).spike_times[-1]
    groups = EventGroups.build(spike_times, MAX_STEP)
    potential = groups.potentials(output.signs.astype(np.int32))
    image_end = np.append(groups.image_start[1:], potential.shape[0]) - 1
    final_potential = potential[image_end]
    never = np.iinfo(np.int64).max
    index = np.arange(potential.shape[0])
    candidates, times, crossing = [], [], []
    for j in range(output.n_out):
        values = np.arange(max(0, output.thresholds[j] - radius),
                           min(output.n_in - 1, output.thresholds[j] + radius) + 1)
        crossed = potential[:, j][:, None] > values[None, :]
        first = np.minimum.reduceat(np.where(crossed, index[:, None], never),
                                    groups.image_start, axis=0)
        has = first != never
        safe = np.where(has, first, 0)
        step = np.where(has, groups.step[safe], NO_SPIKE)
        candidates.append(values)
        times.append(np.where(step < MAX_STEP, step + 1, NO_SPIKE))
        crossing.append(np.where(has, potential[safe, j], 0))
    choice = [int(np.flatnonzero(v == t)[0]) for v, t in zip(candidates, output.thresholds,
                                                                 strict=True)]

    def correct(choice):
        spikes = np.stack([times[j][:, c] for j, c in enumerate(choice)], axis=1)
        cross = np.stack([crossing[j][:, c] for j, c in enumerate(choice)], axis=1)
        first = spikes.min(axis=1)
        score = np.where(spikes == first[:, None], cross, np.iinfo(np.int32).min)
        predicted = np.where(first < NO_SPIKE, np.argmax(score, axis=1),
                             np.argmax(final_potential, axis=1))
        return int(np.sum(predicted == labels))

    before = best = correct(choice)
    for _ in range(rounds):
        improved = False
        for j in range(output.n_out):
            for c in range(candidates[j].size):
                trial = choice[:j] + [c] + choice[j + 1:]
                score = correct(trial)
                if score > best:
                    best, choice, improved = score, trial, True
        if not improved:
            break
    thresholds = np.array([candidates[j][c] for j, c in enumerate(choice)])
    calibrated = Network((*hidden_layers, Layer(output.signs, thresholds)), network.metadata)
    return calibrated, before / labels.size, best / labels.size


# ----------------------------------------------------------------------------- training loop

def _cosine(progress):
    return 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))


def train_epoch(parameters, config, images, labels, rng, epoch, progress=None):
    """One pass over ``images`` in shuffled minibatches; returns the mean loss and the
    running (exact, forward-pass) training accuracy."""
    n = images.shape[0]
    order = rng.permutation(n)
    n_batches = -(-n // config.batch_size)
    losses, correct = [], 0
    for b in range(n_batches):
        batch = order[b * config.batch_size:(b + 1) * config.batch_size]
        pixels = shift_images(images[batch], rng, config.shift)
        if config.flip:
            pixels = flip_images(pixels, rng)
        states = forward(parameters, pixels, config.dropout, rng)
        correct += int(np.sum(decide(states[-1])[0] == labels[batch]))
        if config.loss == "snapshot":
            loss, weight_grads, threshold_grads = snapshot_gradients(
                parameters, states, labels[batch], config.beta, config.surrogate)
        else:
            times = effective_times(states[-1], config.potential_weight)
            loss, d_spikes = spike_loss(times, labels[batch], config.temperature,
                                        config.margin)
            pushes = recruitment(states, config.recruit_rate, config.recruit_strength)
            weight_grads, threshold_grads = backward(parameters, states, d_spikes,
                                                     config.window, pushes, config.near_miss)
        scale = _cosine((epoch + b / n_batches) / config.epochs)
        adam_update(parameters, weight_grads, threshold_grads, config.lr * scale,
                    config.threshold_lr * scale)
        losses.append(loss)
        if progress is not None:
            progress.update(batch.size)
    return float(np.mean(losses)), correct / n


def _save_checkpoint(path, parameters, config, epoch, history, best):
    arrays = parameters.arrays()
    arrays.update({
        "checkpoint_version": np.array(CHECKPOINT_VERSION),
        "epoch": np.array(epoch),
        "config": np.array(json.dumps(config.__dict__ | {"hidden": list(config.hidden)})),
        "history": np.array(json.dumps(history)),
        "best_epoch": np.array(best["epoch"]),
        "best_validation": np.array(best["validation"]),
    })
    for k, (signs, thresholds) in enumerate(best["layers"]):
        arrays[f"best_signs{k}"], arrays[f"best_thresholds{k}"] = signs, thresholds
    with atomic_write(path, "wb") as f:
        np.savez(f, **arrays)


def _load_checkpoint(path, config):
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except FileNotFoundError:
        raise UserError(f"{path}: no checkpoint to resume from") from None
    except (OSError, ValueError, EOFError) as error:
        raise UserError(f"{path}: not a readable checkpoint ({error})") from None
    if int(arrays.get("checkpoint_version", -1)) != CHECKPOINT_VERSION:
        raise UserError(f"{path}: not a bs4nn training checkpoint of version "
                        f"{CHECKPOINT_VERSION}")
    saved = json.loads(str(arrays["config"]))
    # Through JSON, as saved: tuples become lists.
    current = json.loads(json.dumps(config.__dict__))
    # Options added since the checkpoint was written take their defaults.
    defaults = json.loads(json.dumps(TrainConfig().__dict__))
    # The number of epochs may grow on resume; the others act after or beside training.
    differing = sorted(key for key in current
                       if key not in ("epochs", "eval_train", "calibrate", "calibrate_split")
                       and saved.get(key, defaults.get(key)) != current[key])
    if differing:
        raise UserError(f"{path}: checkpoint was trained with different options "
                        f"({', '.join(f'{k}={saved.get(k)}' for k in differing)})")
    n_layers = len(config.sizes) - 1
    best = {"epoch": int(arrays["best_epoch"]), "validation": float(arrays["best_validation"]),
            "layers": [(arrays[f"best_signs{k}"], arrays[f"best_thresholds{k}"])
                       for k in range(n_layers)]}
    return (Parameters.from_arrays(arrays, n_layers), int(arrays["epoch"]),
            json.loads(str(arrays["history"])), best)


def train(config, run_dir, resume=False, stop_after=None, log=print, progress_bar=True):
    """Train per ``config``, checkpointing every epoch in ``run_dir``; ``stop_after`` ends
    this invocation after that many epochs (continue later with ``resume``).

    Returns the best-validation :class:`~.network.Network` (no metadata), the per-epoch
    history and the best epoch's record.
    """
    from tqdm import tqdm

    images, labels = data.load(config.dataset, "train")
    if config.train_subset:
        images, labels = images[:config.train_subset], labels[:config.train_subset]
    val_images, val_labels = _validation_split(config)
    eval_rng = np.random.default_rng([config.seed, 1])
    eval_index = eval_rng.choice(images.shape[0], min(config.eval_train, images.shape[0]),
                                 replace=False)
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_NAME
    if resume:
        parameters, start_epoch, history, best = _load_checkpoint(checkpoint, config)
        log(f"resumed from {checkpoint} after epoch {start_epoch}")
    else:
        init_rng = np.random.default_rng([config.seed, 0])
        sample = images[init_rng.choice(images.shape[0], min(2000, images.shape[0]),
                                        replace=False)]
        parameters = init_parameters(config.sizes, sample, init_rng, config.firing_fraction,
                                     config.init_scale)
        if config.loss == "snapshot":
            hidden_threshold, output_threshold = config.initial_thresholds
            for k, thresholds in enumerate(parameters.thresholds):
                thresholds[:] = output_threshold if k == len(config.hidden) else hidden_threshold
        start_epoch, history = 0, []
        best = {"epoch": -1, "validation": -1.0, "layers": []}
    end_epoch = config.epochs if stop_after is None else min(config.epochs,
                                                             start_epoch + stop_after)
    for epoch in range(start_epoch, end_epoch):
        started = time.monotonic()
        rng = np.random.default_rng([config.seed, 2, epoch])
        with tqdm(total=images.shape[0], desc=f"epoch {epoch + 1}/{config.epochs}",
                  unit="img", disable=not progress_bar, leave=False, mininterval=2) as bar:
            loss, running = train_epoch(parameters, config, images, labels, rng, epoch, bar)
        train_seconds = time.monotonic() - started
        network = to_network(parameters)
        train_figures = evaluate(network, images[eval_index], labels[eval_index])
        val = evaluate(network, val_images, val_labels)
        seconds = time.monotonic() - started
        record = {"epoch": epoch + 1, "loss": loss, "running_train": running,
                  "train": train_figures["strict"], "validation": val["strict"],
                  "validation_lenient": val["lenient"], "mean_step": val["mean_step"],
                  "no_fire": val["no_fire"], "silent": val["silent"],
                  "train_seconds": train_seconds,
                  "seconds": seconds}
        history.append(record)
        if val["strict"] > best["validation"]:
            best = {"epoch": epoch + 1, "validation": val["strict"],
                    "layers": [(layer.signs, layer.thresholds) for layer in network.layers]}
        silent = " ".join(f"{count}/{size}" for count, size in zip(val["silent"], config.hidden,
                                                                  strict=True))
        log(f"epoch {epoch + 1:3}/{config.epochs}  loss {loss:.4f}  "
            f"train {train_figures['strict']:.4f}  validation {val['strict']:.4f} "
            f"(lenient {val['lenient']:.4f})  mean step {val['mean_step']:.1f}  "
            f"no-fire {val['no_fire']:.4f}  silent hidden {silent}  "
            f"{train_seconds:.1f} s train, {seconds:.1f} s total")
        _save_checkpoint(checkpoint, parameters, config, epoch + 1, history, best)
    if best["epoch"] < 0:
        raise UserError(f"{checkpoint}: already trained for {config.epochs} epochs and no "
                        f"best network recorded")
    network = Network(tuple(Layer(signs, thresholds) for signs, thresholds in best["layers"]))
    return network, history, best


def plot_curves(history, path, title):
    """Training curves: accuracies, loss, mean decision step and no-fire fraction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(epochs, [r["train"] for r in history], label="train (exact)")
    axes[0].plot(epochs, [r["validation"] for r in history], label="validation strict")
    axes[0].plot(epochs, [r["validation_lenient"] for r in history], "--",
                 label="validation lenient")
    axes[0].set_ylabel("accuracy")
    axes[0].legend()
    axes[1].plot(epochs, [r["loss"] for r in history])
    axes[1].set_ylabel("training loss")
    axes[2].plot(epochs, [r["mean_step"] for r in history], label="mean decision step")
    axes[2].set_ylabel("step")
    twin = axes[2].twinx()
    twin.plot(epochs, [r["no_fire"] for r in history], "r:", label="no-fire fraction")
    twin.set_ylabel("no-fire fraction")
    for axis in axes:
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
    figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=100)
    plt.close(figure)


# ----------------------------------------------------------------------------- command line

def add_arguments(parser):
    defaults = TrainConfig()
    parser.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist")
    parser.add_argument("--hidden", type=int, nargs="+", default=None, metavar="N",
                        help="hidden layer sizes (default 600 for mnist, 1000 for "
                             "fashion-mnist)")
    parser.add_argument("--epochs", type=int, default=defaults.epochs)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.lr,
                        help="Adam learning rate of the latent weights")
    parser.add_argument("--threshold-lr", type=float, default=defaults.threshold_lr,
                        help="Adam learning rate of the thresholds (potential units)")
    parser.add_argument("--temperature", type=float, default=defaults.temperature,
                        help="softmax temperature over spike times, in steps")
    parser.add_argument("--potential-weight", type=float, default=defaults.potential_weight,
                        help="weight of the crossing potential in the loss's spike times "
                             "(models the decision's tie-break)")
    parser.add_argument("--margin", type=float, default=defaults.margin,
                        help="steps by which the true class must win in the loss")
    parser.add_argument("--recruit-rate", type=float, default=defaults.recruit_rate,
                        help="hidden neurons spiking before fewer than this fraction of a "
                             "batch's decisions are pushed to fire earlier")
    parser.add_argument("--recruit-strength", type=float, default=defaults.recruit_strength,
                        help="strength of that push (0: off)")
    parser.add_argument("--window", type=float, default=defaults.window,
                        help="steps over which late inputs still receive error (0: none)")
    parser.add_argument("--near-miss", type=float, default=defaults.near_miss,
                        help="hidden neurons that missed the decision by a potential gap g "
                             "get exp(-g / S) of the error they would get had they spiked "
                             "(0: off)")
    parser.add_argument("--init-scale", type=float, default=defaults.init_scale,
                        help="latent weights start uniform in [-S, S]")
    parser.add_argument("--firing-fraction", type=float, default=defaults.firing_fraction,
                        help="initial thresholds make each neuron fire on this fraction of "
                             "images")
    parser.add_argument("--shift", type=int, default=defaults.shift,
                        help="largest random shift of training images, in pixels")
    parser.add_argument("--flip", action="store_true",
                        help="mirror a random half of the training images left to right")
    parser.add_argument("--dropout", type=float, default=defaults.dropout,
                        help="drop each hidden spike with this probability in training "
                             "(snapshot loss only)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--train-subset", type=int, default=0, metavar="N",
                        help="train on the first N training images only (smoke tests)")
    parser.add_argument("--validation-subset", type=int, default=0, metavar="N",
                        help="select the epoch on the first N validation images only "
                             "(smoke tests; default all)")
    parser.add_argument("--calibrate", type=int, default=TrainConfig.calibrate, metavar="N",
                        help="after training, tune the output thresholds on N training "
                             "images (0: off)")
    parser.add_argument("--calibrate-split", choices=("train", "validation"), default="train",
                        help="calibrate on N training images (kept if validation does not "
                             "drop), or on the first half of the validation split (kept if "
                             "the second half does not drop)")
    parser.add_argument("--stop-after", type=int, default=None, metavar="N",
                        help="stop this invocation after N epochs (continue with --resume)")
    parser.add_argument("--out", default=None,
                        help="weights file (default weights/<dataset>-784-<hidden>-10.npz)")
    parser.add_argument("--run-dir", default=None,
                        help="checkpoints and curves (default runs/<dataset>)")
    parser.add_argument("--resume", action="store_true",
                        help="continue from the checkpoint in the run directory")
    parser.add_argument("--curves", default=None,
                        help="training curves PNG (default <run-dir>/curves.png)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--loss", choices=("snapshot", "spike-time"), default=defaults.loss,
                        help="snapshot: cross-entropy of the output potentials at the "
                             "decision step (default); spike-time: BS4NN-style temporal loss")
    parser.add_argument("--beta", type=float, default=defaults.beta,
                        help="snapshot loss: softmax scale of the output potentials")
    parser.add_argument("--surrogate", type=float, default=defaults.surrogate,
                        help="snapshot loss: width of the hidden neurons' surrogate gradient, "
                             "in potential units")
    parser.add_argument("--initial-thresholds", type=float, nargs=2,
                        default=defaults.initial_thresholds, metavar=("HIDDEN", "OUTPUT"),
                        help="snapshot loss: starting thresholds")


def _config_from_args(args):
    if args.dataset not in data.DATASETS:
        raise UserError(f"unknown dataset {args.dataset!r} (choose from "
                        f"{', '.join(data.DATASETS)})")
    hidden = tuple(args.hidden) if args.hidden else tuple(DEFAULT_HIDDEN[args.dataset])
    checks = [
        (all(n >= 1 for n in hidden), f"--hidden sizes must be positive, got {list(hidden)}"),
        (args.epochs >= 1, f"--epochs must be at least 1, got {args.epochs}"),
        (args.batch_size >= 1, f"--batch-size must be at least 1, got {args.batch_size}"),
        (args.lr > 0, f"--lr must be positive, got {args.lr}"),
        (args.threshold_lr >= 0, f"--threshold-lr must be non-negative, got "
                                 f"{args.threshold_lr}"),
        (args.temperature > 0, f"--temperature must be positive, got {args.temperature}"),
        (args.potential_weight >= 0, f"--potential-weight must be non-negative, got "
                                     f"{args.potential_weight}"),
        (args.window >= 0, f"--window must be non-negative, got {args.window}"),
        (args.near_miss >= 0, f"--near-miss must be non-negative, got {args.near_miss}"),
        (args.margin >= 0, f"--margin must be non-negative, got {args.margin}"),
        (0 <= args.recruit_rate < 1, f"--recruit-rate must lie in [0, 1), got "
                                     f"{args.recruit_rate}"),
        (args.recruit_strength >= 0, f"--recruit-strength must be non-negative, got "
                                     f"{args.recruit_strength}"),
        (0 < args.init_scale <= 1, f"--init-scale must lie in (0, 1], got {args.init_scale}"),
        (0 < args.firing_fraction < 1, f"--firing-fraction must lie in (0, 1), got "
                                       f"{args.firing_fraction}"),
        (0 <= args.shift <= 4, f"--shift must lie in 0..4, got {args.shift}"),
        (0 <= args.dropout < 1, f"--dropout must lie in [0, 1), got {args.dropout}"),
        (args.dropout == 0 or args.loss == "snapshot",
         "--dropout needs --loss snapshot"),
        (0 <= args.train_subset <= data.N_TRAIN,
         f"--train-subset must lie in 0..{data.N_TRAIN}, got {args.train_subset}"),
        (0 <= args.validation_subset <= data.N_VALIDATION,
         f"--validation-subset must lie in 0..{data.N_VALIDATION}, got "
         f"{args.validation_subset}"),
        (0 <= args.calibrate <= data.N_TRAIN,
         f"--calibrate must lie in 0..{data.N_TRAIN}, got {args.calibrate}"),
        (args.beta > 0, f"--beta must be positive, got {args.beta}"),
        (args.surrogate > 0, f"--surrogate must be positive, got {args.surrogate}"),
        (min(args.initial_thresholds) >= 0,
         f"--initial-thresholds must be non-negative, got {args.initial_thresholds}"),
        (args.stop_after is None or args.stop_after >= 1,
         f"--stop-after must be at least 1, got {args.stop_after}"),
        (args.train_subset == 0 or args.train_subset >= args.batch_size,
         f"--train-subset {args.train_subset} is smaller than --batch-size "
         f"{args.batch_size}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(message)
    return TrainConfig(dataset=args.dataset, hidden=hidden, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, threshold_lr=args.threshold_lr,
                       temperature=args.temperature, potential_weight=args.potential_weight,
                       margin=args.margin, recruit_rate=args.recruit_rate,
                       recruit_strength=args.recruit_strength,
                       window=args.window, near_miss=args.near_miss,
                       init_scale=args.init_scale,
                       firing_fraction=args.firing_fraction, shift=args.shift, flip=args.flip,
                       dropout=args.dropout, seed=args.seed,
                       train_subset=args.train_subset,
                       validation_subset=args.validation_subset, calibrate=args.calibrate,
                       calibrate_split=args.calibrate_split,
                       loss=args.loss, beta=args.beta, surrogate=args.surrogate,
                       initial_thresholds=tuple(args.initial_thresholds))


def _validation_split(config):
    images, labels = data.load(config.dataset, "validation")
    if config.validation_subset:
        return images[:config.validation_subset], labels[:config.validation_subset]
    return images, labels


def _calibrate(network, config, validation, log):
    """Calibrate the output thresholds; keep the result only when the accuracy on images not
    used to fit them does not drop. Returns ``(network, validation accuracy, record)``."""
    val_images, val_labels = _validation_split(config)
    if config.calibrate_split == "validation":
        n = val_labels.size // 2
        calibrated, fit_before, fit_after = calibrate_output_thresholds(
            network, val_images[:n], val_labels[:n])
        check_images, check_labels = val_images[n:], val_labels[n:]
        check_before = evaluate(network, check_images, check_labels)["strict"]
        check_after = evaluate(calibrated, check_images, check_labels)["strict"]
        calibrated_validation = evaluate(calibrated, val_images, val_labels)["strict"]
        fit_name = f"the first {n} validation images"
    else:
        images, labels = data.load(config.dataset, "train")
        n = min(config.calibrate, config.train_subset or data.N_TRAIN)
        calibrated, fit_before, fit_after = calibrate_output_thresholds(
            network, images[:n], labels[:n])
        # The check is the whole validation split, whose accuracy before is `validation`.
        check_labels = val_labels
        check_before = validation
        check_after = calibrated_validation = evaluate(calibrated, val_images,
                                                       val_labels)["strict"]
        fit_name = f"{n} training images"
    kept = check_after >= check_before
    log(f"output thresholds calibrated on {fit_name}: {fit_before:.4f} -> {fit_after:.4f}; "
        f"on the images held out for the check {check_before:.4f} -> {check_after:.4f} "
        f"({'kept' if kept else 'discarded'}); validation {validation:.4f} -> "
        f"{calibrated_validation:.4f}; thresholds {network.layers[-1].thresholds.tolist()} -> "
        f"{calibrated.layers[-1].thresholds.tolist()}")
    record = {"split": config.calibrate_split, "fit_images": n, "fit_before": fit_before,
              "fit_after": fit_after, "check_images": int(check_labels.size),
              "check_before": check_before, "check_after": check_after,
              "validation_before": validation, "validation_after": calibrated_validation,
              "kept": bool(kept)}
    if kept:
        return calibrated, calibrated_validation, record
    return network, validation, record


def run(args):
    config = _config_from_args(args)
    sizes = "-".join(map(str, config.sizes))
    out = Path(args.out or Path("weights") / f"{config.dataset}-{sizes}.npz")
    run_dir = Path(args.run_dir or Path("runs") / config.dataset)
    curves = Path(args.curves or run_dir / "curves.png")
    if out.exists() and out.is_dir():
        raise UserError(f"--out {out}: is a directory")
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "train.log"
    started = time.monotonic()

    def log(line):
        print(line, flush=True)
        with open(log_path, "a") as f:
            f.write(line + "\n")

    log(f"{config.command()}  ({sizes}, run dir {run_dir}, pid {os.getpid()})")
    network, history, best = train(config, run_dir, resume=args.resume,
                                   stop_after=args.stop_after, log=log,
                                   progress_bar=not args.no_progress)
    if len(history) < config.epochs:
        log(f"stopped after epoch {len(history)} of {config.epochs}; continue with --resume "
            f"(checkpoint {run_dir / CHECKPOINT_NAME})")
        return 0
    plot_curves(history, curves, f"{config.dataset} {sizes}")
    validation = best["validation"]
    calibration = None
    if config.calibrate:
        network, validation, calibration = _calibrate(network, config, validation, log)
    test_images, test_labels = data.load(config.dataset, "test")
    test = evaluate(network, test_images, test_labels)
    metadata = {
        "dataset": config.dataset,
        "sizes": config.sizes,
        "strict_test_accuracy": test["strict"],
        "lenient_test_accuracy": test["lenient"],
        "validation_accuracy": validation,
        "selected_epoch": best["epoch"],
        "output_threshold_calibration": calibration,
        "command": config.command(),
        "seed": config.seed,
        "epochs": config.epochs,
        "trainer": config.describe(),
        "test_mean_decision_step": test["mean_step"],
        "test_no_fire_fraction": test["no_fire"],
    }
    Network(network.layers, metadata).save(out)
    total = sum(r["seconds"] for r in history)
    log(f"selected epoch {best['epoch']} (validation strict {validation:.4f}); "
        f"test strict {test['strict']:.4f}, lenient {test['lenient']:.4f}, mean decision "
        f"step {test['mean_step']:.1f}, no-fire {test['no_fire']:.4f}")
    log(f"wrote {out} and {curves}; {total:.0f} s of epochs "
        f"({time.monotonic() - started:.0f} s this invocation)")
    return 0
