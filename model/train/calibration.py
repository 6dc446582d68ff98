"""Calibration of the output thresholds after training, and the check that decides whether
the calibrated thresholds are kept."""

import numpy as np

from .. import data
from ..inference import EventGroups, encode, infer
from ..network import MAX_STEP, NO_SPIKE, Layer, Network
from .loop import evaluate, validation_split

__all__ = ["calibrate_output_thresholds", "calibrate"]


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
