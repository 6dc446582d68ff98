"""Calibration of the output thresholds after training, and the check that decides whether
the calibrated thresholds are kept.

The output potentials do not depend on the thresholds, so each candidate threshold's
crossings are :func:`~bs4nn.model.inference.crossings` on the same potentials, and each
candidate decision is :func:`~bs4nn.model.inference.decide`: the search scores exactly what
inference computes.
"""

import dataclasses

import numpy as np

from .. import data
from ..inference import crossings, decide, encode, infer, layer_forward
from ..network import Layer, Network
from .loop import evaluate, validation_split

__all__ = ["calibrate_output_thresholds", "calibrate"]


def calibrate_output_thresholds(network, images, labels, radius=8, rounds=3):
    """Tune the output layer's integer thresholds for exact strict accuracy on ``images``.

    A neuron's crossing depends only on its own threshold, so the crossings of every
    candidate (within ``radius`` of each current threshold) are computed once; coordinate
    ascent then moves one threshold at a time to the candidate with the most correct
    decisions. Returns ``(network, accuracy before, after)``.
    """
    *hidden_layers, output = network.layers
    if hidden_layers:
        # infer works in chunks; the last hidden layer's spike times feed the output layer.
        spike_times = infer(Network(tuple(hidden_layers)), images).spike_times[-1]
    else:
        spike_times = encode(images)
    current = layer_forward(spike_times, output, is_output=True)
    # candidates[c, j]: threshold c - radius away from neuron j's (clipped, so ends repeat).
    offsets = np.arange(-radius, radius + 1)
    candidates = np.clip(output.thresholds + offsets[:, None], 0, output.n_in - 1)
    results = [crossings(current.groups, current.potential, thresholds)
               for thresholds in candidates]
    crossing_step = np.stack([result.crossing_step for result in results])
    crossing_potential = np.stack([result.crossing_potential for result in results])
    neuron = np.arange(output.n_out)

    def correct(choice):
        chosen = dataclasses.replace(current, crossing_step=crossing_step[choice, :, neuron].T,
                                     crossing_potential=crossing_potential[choice, :, neuron].T)
        return int(np.sum(decide(chosen)[0] == labels))

    choice = np.full(output.n_out, radius)
    before = best = correct(choice)
    for _ in range(rounds):
        improved = False
        for j in range(output.n_out):
            for c in range(candidates.shape[0]):
                if c > 0 and candidates[c, j] == candidates[c - 1, j]:
                    continue
                trial = choice.copy()
                trial[j] = c
                score = correct(trial)
                if score > best:
                    best, choice, improved = score, trial, True
        if not improved:
            break
    thresholds = candidates[choice, neuron]
    calibrated = Network((*hidden_layers, Layer(output.signs, thresholds)), network.metadata)
    return calibrated, before / labels.size, best / labels.size


def calibrate(network, config, validation, log):
    """Calibrate the output thresholds; keep the result only when the accuracy on images not
    used to fit them does not drop. Returns ``(network, validation accuracy, record)``."""
    val_images, val_labels = validation_split(config)
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
