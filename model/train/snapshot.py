"""The snapshot loss (the default): cross-entropy of the output potentials at the decision.

The decision looks at the output potentials at the crossing step of the earliest output spike,
so the loss reads them there, as in a binary network; hidden neurons get their error through a
Laplace surrogate of their potential.
"""

import numpy as np

from ..network import MAX_STEP, NO_SPIKE

__all__ = ["snapshot_gradients", "softmax"]


def softmax(logits):
    """Row-wise softmax of ``(n, k)`` logits."""
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


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


def snapshot_gradients(parameters, states, labels, beta, surrogate, soft=None, weight=0.0,
                       temperature=1.0):
    """Loss and gradients of the snapshot loss: ``(loss, weight_grads, threshold_grads)``.

    With a teacher's ``soft`` predictions (float ``(n, n_out)``, its softmax at
    ``temperature``), the loss is distilled as in Hinton et al. (2015): ``1 - weight`` of the
    cross-entropy with the labels plus ``weight · temperature²`` of the cross-entropy of
    ``softmax(beta V / temperature)`` with ``soft``.

    The decision looks at the output potentials ``V`` at the crossing step ``k*`` of the
    earliest output spike (step 255 when none fires); the winner is their argmax (for equal
    thresholds), so the loss is the cross-entropy of ``softmax(beta V)``, as in a binary
    network. ``V_j = Σ_h sign(w_jh) [s_h <= k*]``: the output gradient is straight-through.
    A neuron of layer ``k`` is seen by layer ``k + 1`` at step ``T_{k+1}`` (``T_out = k*``,
    one step earlier per layer down): it counts when it crossed by ``T_k = T_{k+1} - 1``,
    judged on its potential at ``min(crossing, T_k)`` through a Laplace surrogate of width
    ``surrogate``. Weight gradients are event-driven (``membershipᵀ A``, as in
    :func:`.spike_time.backward`).
    """
    n = labels.size
    output = states[-1]
    decision = np.minimum(output.spike_times.min(axis=1).astype(np.int64) - 1, MAX_STEP)
    potential = _potential_at(output, decision)
    logits = beta * potential
    probabilities = softmax(logits)
    loss = -float(np.mean(np.log(probabilities[np.arange(n), labels] + 1e-12)))
    d_potential = probabilities
    d_potential[np.arange(n), labels] -= 1
    if soft is not None:
        softened = softmax(logits / temperature)
        soft_loss = -float(np.sum(soft * np.log(softened + 1e-12)) / n)
        loss = (1 - weight) * loss + weight * temperature ** 2 * soft_loss
        d_potential = (1 - weight) * d_potential + weight * temperature * (softened - soft)
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
