"""Exact, integer BS4NN inference: the definition of what the hardware computes.

Semantics (all integer, deterministic):

* Encoding: pixel ``p`` (0..255) spikes at step ``MAX_STEP - p``.
* A layer's potential ``V_j(t)`` is the sum of ``signs[j, i]`` over inputs with spike time
  ``s_i <= t``. The crossing step ``k_j`` is the first ``t`` in ``0..MAX_STEP`` with
  ``V_j(t) > threshold_j``; the neuron's spike time is ``k_j + 1`` when ``k_j < MAX_STEP``,
  else ``NO_SPIKE`` (one step of delay per layer).
* Decision: the output neuron with the earliest spike wins; ties go to the larger potential at
  the crossing step, then to the lower index. When no output neuron spikes, the largest
  potential at step ``MAX_STEP`` wins, then the lower index. The decision step is the earliest
  output spike time (``NO_SPIKE`` when none fires).

The evaluation is event-driven: its cost grows with the number of spikes and of distinct
spike steps per image, not with ``steps x neurons``.
"""

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from .network import MAX_STEP, NO_SPIKE

__all__ = ["encode", "EventGroups", "LayerResult", "layer_forward", "crossings", "Inference",
           "infer",
           "decide", "reference_infer", "CHUNK"]

#: Images evaluated together; bounds memory at about (CHUNK x 70 steps x n_out) integers.
CHUNK = 256


def encode(pixels):
    """Spike times of the input layer: uint8 ``(n, n_in)`` pixels to int16 ``MAX_STEP - p``."""
    return (MAX_STEP - np.asarray(pixels, dtype=np.int16)).astype(np.int16)


@dataclass(frozen=True)
class EventGroups:
    """The spikes of a batch of images grouped by (image, step), in time order per image.

    Each image also gets one empty sentinel group at step ``NO_SPIKE``, so no image is empty.

    Attributes
    ----------
    membership : scipy CSR ``(n_groups, n_in)`` of 1s, input ``i`` spiking in group ``g``
    step : int16 ``(n_groups,)``, the step of each group
    image_start : int64 ``(n_images,)``, index of each image's first group
    image_of_group : int64 ``(n_groups,)``
    """

    membership: scipy.sparse.csr_matrix
    step: np.ndarray
    image_start: np.ndarray
    image_of_group: np.ndarray

    @classmethod
    def build(cls, spike_times, last_step):
        """Group the spikes with ``spike_times <= last_step`` of ``(n, n_in)`` spike times."""
        n_images, n_in = spike_times.shape
        image, source = np.nonzero(spike_times <= last_step)
        stride = NO_SPIKE + 1
        keys = np.concatenate([image * stride + spike_times[image, source],
                               np.arange(n_images) * stride + NO_SPIKE])
        unique_keys, group = np.unique(keys, return_inverse=True)
        membership = scipy.sparse.csr_matrix(
            (np.ones(image.size, dtype=np.int16), (group[: image.size], source)),
            shape=(unique_keys.size, n_in))
        image_of_group = unique_keys // stride
        return cls(membership, (unique_keys % stride).astype(np.int16),
                   np.searchsorted(image_of_group, np.arange(n_images)), image_of_group)

    def potentials(self, weights):
        """Potential after each group: ``(n_groups, n_out)`` for weights ``(n_out, n_in)``.

        One cumulative sum over the whole batch: each image's first increment has the previous
        image's total subtracted, so every image starts again from zero. With int16 weights
        the running sum may wrap around, but wrapping is modular, so every potential is exact
        while ``|V| <= n_in < 2**15``; float weights (training) hold small integers exactly.
        """
        increments = self.membership.astype(weights.dtype) @ np.ascontiguousarray(weights.T)
        totals = np.add.reduceat(increments, self.image_start, axis=0, dtype=increments.dtype)
        increments[self.image_start[1:]] -= totals[:-1]
        return np.cumsum(increments, axis=0, dtype=increments.dtype)


@dataclass(frozen=True)
class LayerResult:
    """One layer's evaluation over a batch of ``n`` images.

    Attributes
    ----------
    crossing_step : int16 ``(n, n_out)``, the first step with ``V > threshold`` (``NO_SPIKE``
        if none)
    crossing_potential : int32 ``(n, n_out)``, the potential at that step (0 if none)
    final_potential : int32 ``(n, n_out)``, the potential at ``MAX_STEP``
    groups : the :class:`EventGroups` of the layer's inputs
    potential : int16 ``(n_groups, n_out)``, the potential after each group (the crossings
        of other thresholds, and the trainer's backward pass, are read from it)
    """

    crossing_step: np.ndarray
    crossing_potential: np.ndarray
    final_potential: np.ndarray
    groups: EventGroups
    potential: np.ndarray

    @property
    def spike_times(self):
        """``k + 1`` for a crossing at ``k < MAX_STEP``, else ``NO_SPIKE`` (int16)."""
        k = self.crossing_step
        return np.where(k < MAX_STEP, k + 1, NO_SPIKE).astype(np.int16)


def layer_forward(spike_times, layer, is_output):
    """Evaluate one :class:`~.network.Layer` for ``(n, n_in)`` input spike times; returns a
    :class:`LayerResult`. Inference and training both run their layers through it.

    Inputs spiking at ``MAX_STEP`` can only cause a crossing at ``MAX_STEP``, which emits no
    spike, so hidden layers skip them; the output layer keeps them for its final potentials.
    """
    groups = EventGroups.build(spike_times, MAX_STEP if is_output else MAX_STEP - 1)
    potential = groups.potentials(layer.signs.astype(np.int16))
    return crossings(groups, potential, layer.thresholds)


def crossings(groups, potential, thresholds):
    """First crossings of ``potential > thresholds`` per image and neuron.

    ``potential`` is int16 ``(n_groups, n_out)`` after each of ``groups`` and ``thresholds``
    integer ``(n_out,)``; returns a :class:`LayerResult`. The potentials do not depend on the
    thresholds, so other thresholds' crossings are this function on the same potentials.
    """
    crossed = potential > np.asarray(thresholds).astype(np.int16)
    never = np.iinfo(np.int32).max
    first_group = np.minimum.reduceat(
        np.where(crossed, np.arange(potential.shape[0], dtype=np.int32)[:, None], never),
        groups.image_start, axis=0)
    has_crossed = first_group != never
    safe_group = np.where(has_crossed, first_group, 0)
    neuron = np.arange(potential.shape[1])
    crossing_step = np.where(has_crossed, groups.step[safe_group], NO_SPIKE).astype(np.int16)
    crossing_potential = np.where(has_crossed, potential[safe_group, neuron], 0)
    image_end = np.append(groups.image_start[1:], potential.shape[0]) - 1
    return LayerResult(crossing_step, crossing_potential.astype(np.int32),
                       potential[image_end].astype(np.int32), groups, potential)


@dataclass(frozen=True)
class Inference:
    """Results for ``n`` images.

    Attributes
    ----------
    predicted : int64 ``(n,)``
    decision_step : int16 ``(n,)``, earliest output spike time, ``NO_SPIKE`` if none fired
    fired : bool ``(n,)``, whether any output neuron spiked
    spike_times : tuple of int16 ``(n, n_out_k)``, one per layer (hidden layers..., output)
    tied : bool ``(n, n_classes)``, output neurons sharing the earliest spike (for the
        lenient, paper-style accuracy)
    """

    predicted: np.ndarray
    decision_step: np.ndarray
    fired: np.ndarray
    spike_times: tuple
    tied: np.ndarray

    def strict_accuracy(self, labels):
        return float(np.mean(self.predicted == labels))

    def lenient_accuracy(self, labels):
        """Paper-style: also correct when the true class is among the tied first spikes."""
        among_tied = self.fired & self.tied[np.arange(labels.size), labels]
        return float(np.mean((self.predicted == labels) | among_tied))


def decide(output):
    """Apply the decision rule to an output :class:`LayerResult`.

    Returns ``(predicted, decision_step, fired, tied)``.
    """
    spikes = output.spike_times
    first = spikes.min(axis=1)
    fired = first < NO_SPIKE
    tied = spikes == first[:, None]
    # Among tied first spikes the larger crossing potential wins; argmax picks the lower index.
    tie_score = np.where(tied, output.crossing_potential, np.iinfo(np.int32).min)
    predicted = np.where(fired, np.argmax(tie_score, axis=1),
                         np.argmax(output.final_potential, axis=1))
    return predicted, first.astype(np.int16), fired, tied & fired[:, None]


def infer(network, pixels):
    """Run ``network`` on uint8 ``(n, n_in)`` pixels; returns an :class:`Inference`."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 1:
        pixels = pixels[None]
    parts = [_infer_chunk(network, pixels[start:start + CHUNK])
             for start in range(0, pixels.shape[0], CHUNK)]
    return Inference(
        predicted=np.concatenate([p[0] for p in parts]),
        decision_step=np.concatenate([p[1] for p in parts]),
        fired=np.concatenate([p[2] for p in parts]),
        spike_times=tuple(np.concatenate([p[3][k] for p in parts])
                          for k in range(len(network.layers))),
        tied=np.concatenate([p[4] for p in parts]),
    )


def _infer_chunk(network, pixels):
    spike_times = encode(pixels)
    layer_spikes = []
    for k, layer in enumerate(network.layers):
        result = layer_forward(spike_times, layer, is_output=k == len(network.layers) - 1)
        spike_times = result.spike_times
        layer_spikes.append(spike_times)
    predicted, decision_step, fired, tied = decide(result)
    return predicted, decision_step, fired, layer_spikes, tied


def reference_infer(network, pixels):
    """Plain step-by-step evaluation of one image, for tests: ``(predicted, decision_step,
    fired, spike_times per layer)``. Slow (steps x neurons) and obviously correct."""
    times = [int(MAX_STEP - p) for p in np.asarray(pixels, dtype=np.int64)]
    all_spikes = []
    for layer in network.layers:
        potential = [0] * layer.n_out
        crossing = [None] * layer.n_out
        crossing_potential = [0] * layer.n_out
        for t in range(MAX_STEP + 1):
            for i, s in enumerate(times):
                if s == t:
                    for j in range(layer.n_out):
                        potential[j] += int(layer.signs[j, i])
            for j in range(layer.n_out):
                if crossing[j] is None and potential[j] > layer.thresholds[j]:
                    crossing[j], crossing_potential[j] = t, potential[j]
        times = [c + 1 if c is not None and c < MAX_STEP else NO_SPIKE for c in crossing]
        all_spikes.append(times)
    first = min(times)
    if first < NO_SPIKE:
        tied = [j for j, s in enumerate(times) if s == first]
        best = max(crossing_potential[j] for j in tied)
        predicted = min(j for j in tied if crossing_potential[j] == best)
    else:
        predicted = potential.index(max(potential))
    return predicted, first, first < NO_SPIKE, all_spikes
