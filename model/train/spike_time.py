"""The spike-time loss (``--loss spike-time``): BS4NN temporal backpropagation.

The backward pass follows BS4NN (Kheradpisheh et al. 2021): a neuron's spike time moves by
``-1`` per unit of potential (``ds_j / dV_j = -1``), its potential depends on the inputs that
spiked before it (``dV_j / dw_ji = [s_i < s_j]``), and an input's spike time shifts the
neuron's by its weight (``ds_j / ds_i = sign(w_ji) [s_i < s_j]``). On top of the authors' rule:

* loss: cross-entropy of ``softmax(-s' / T)`` over the output spike times refined by the
  decision's tie-break, ``s' = s - λ V`` (``V`` the potential at the crossing); a neuron that
  never fires counts as firing at 256, so a silent network still pushes the true class to
  fire;
* near misses: a last-hidden-layer neuron that did not spike before the decision but came
  within a few units of its threshold gets part of the error it would have had, had it
  spiked in time (without this, half the hidden layer can fall silent for good);
* thresholds are trained too (``ds_j / dθ_j = +1``), initialised from the data so that each
  neuron fires on a set fraction of images.

Every gradient is event-driven: for the event groups ``g`` (image, step) of a layer's inputs,
``A[g, j] = δ_{b(g), j} [step_g < s_{b(g), j}]`` gives the weight gradient
``-(membershipᵀ A)ᵀ`` and the input error ``(A sign(W))[g, i]`` for the inputs ``i`` of ``g``;
no ``(images, 256, neurons)`` tensor is ever built. Two further ideas stay available but off
by default, as they did not help when measured: recruitment (push rarely used hidden neurons
to fire: decisions drift ever earlier and accuracy falls) and an error window for inputs
spiking just after the neuron.
"""

import numpy as np

from ..network import NO_SPIKE
from .snapshot import softmax

__all__ = ["effective_times", "spike_loss", "recruitment", "near_misses", "backward"]

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
    probabilities = softmax(-spike_times / temperature)
    loss = -np.mean(np.log(probabilities[np.arange(n), labels] + 1e-12))
    target = np.zeros_like(probabilities)
    target[np.arange(n), labels] = 1
    return loss, -(probabilities - target) / (temperature * n)


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
