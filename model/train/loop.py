"""The training loop: minibatch epochs, exact evaluation after each epoch, checkpoints.

After every epoch the binarized network is evaluated exactly with
:func:`~bs4nn.model.inference.infer` on the validation split (and a training subset); the
epoch with the best validation accuracy is kept. Each epoch ends with a checkpoint, so a run
can be stopped and resumed with the same result.
"""

import json
import time
from pathlib import Path

import numpy as np

from .. import data
from ..errors import UserError
from ..inference import decide, infer
from ..network import NO_SPIKE, Layer, Network, atomic_write
from .augment import flip_images, shift_images
from .config import TrainConfig
from .parameters import Parameters, adam_update, forward, init_parameters, to_network
from .snapshot import snapshot_gradients
from .spike_time import backward, effective_times, recruitment, spike_loss
from .teacher import TEACHER_EPOCHS, TEACHER_HIDDEN, Teacher, soft_predictions, train_teacher

__all__ = ["train", "train_epoch", "evaluate", "validation_split", "checkpoint_history",
           "CHECKPOINT_NAME"]

CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_VERSION = 1


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


def validation_split(config):
    """The validation images and labels the epoch is selected on."""
    images, labels = data.load(config.dataset, "validation")
    if config.validation_subset:
        return images[:config.validation_subset], labels[:config.validation_subset]
    return images, labels


def _cosine(progress):
    return 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))


def train_epoch(parameters, config, images, labels, rng, epoch, progress=None, teacher=None):
    """One pass over ``images`` in shuffled minibatches; returns the mean loss and the
    running (exact, forward-pass) training accuracy. ``teacher`` (with ``config.distill``)
    distils the loss (:mod:`.teacher`)."""
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
            soft = None if teacher is None else soft_predictions(teacher, pixels,
                                                                 config.distill_temperature)
            loss, weight_grads, threshold_grads = snapshot_gradients(
                parameters, states, labels[batch], config.beta, config.surrogate, soft,
                config.distill, config.distill_temperature)
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
        if config.average:
            parameters.update_averages(config.average)
        losses.append(loss)
        if progress is not None:
            progress.update(batch.size)
    return float(np.mean(losses)), correct / n


def _save_checkpoint(path, parameters, config, epoch, history, best, teacher):
    arrays = parameters.arrays()
    if teacher is not None:
        arrays.update(teacher.arrays())
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


def _read_checkpoint(path):
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
    return arrays


def checkpoint_history(path):
    """The per-epoch records (as :func:`train` returns them) saved in the checkpoint ``path``."""
    return json.loads(str(_read_checkpoint(path)["history"]))


def _load_checkpoint(path, config):
    arrays = _read_checkpoint(path)
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
            json.loads(str(arrays["history"])), best, Teacher.from_arrays(arrays))


def train(config, run_dir, resume=False, stop_after=None, log=print, progress_bar=True,
          on_epoch=None):
    """Train per ``config``, checkpointing every epoch in ``run_dir``; ``stop_after`` ends
    this invocation after that many epochs (continue later with ``resume``). ``on_epoch``, if
    given, is called with each epoch's record once its checkpoint is written (``bs4nn sweep``
    reports it to Ray Tune).

    Returns the best-validation :class:`~bs4nn.model.network.Network` (no metadata), the per-epoch
    history and the best epoch's record.
    """
    from tqdm import tqdm

    images, labels = data.load(config.dataset, "train")
    if config.train_subset:
        images, labels = images[:config.train_subset], labels[:config.train_subset]
    val_images, val_labels = validation_split(config)
    eval_rng = np.random.default_rng([config.seed, 1])
    eval_index = eval_rng.choice(images.shape[0], min(config.eval_train, images.shape[0]),
                                 replace=False)
    run_dir = Path(run_dir)
    checkpoint = run_dir / CHECKPOINT_NAME
    if resume:
        parameters, start_epoch, history, best, teacher = _load_checkpoint(checkpoint, config)
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
        teacher = None
        if config.distill:
            with tqdm(total=images.shape[0] * TEACHER_EPOCHS, desc="teacher", unit="img",
                      disable=not progress_bar, leave=False, mininterval=2) as bar:
                teacher = train_teacher(images, labels, np.random.default_rng([config.seed, 3]),
                                        bar)
            log(f"teacher 784-{TEACHER_HIDDEN}-10 (ReLU, {TEACHER_EPOCHS} epochs): validation "
                f"{teacher.accuracy(val_images, val_labels):.4f}")
    end_epoch = config.epochs if stop_after is None else min(config.epochs,
                                                             start_epoch + stop_after)
    for epoch in range(start_epoch, end_epoch):
        started = time.monotonic()
        rng = np.random.default_rng([config.seed, 2, epoch])
        with tqdm(total=images.shape[0], desc=f"epoch {epoch + 1}/{config.epochs}",
                  unit="img", disable=not progress_bar, leave=False, mininterval=2) as bar:
            loss, running = train_epoch(parameters, config, images, labels, rng, epoch, bar,
                                        teacher)
        train_seconds = time.monotonic() - started
        network = to_network(parameters.averaged() if config.average else parameters)
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
        _save_checkpoint(checkpoint, parameters, config, epoch + 1, history, best, teacher)
        if on_epoch is not None:
            on_epoch(record)
    if best["epoch"] < 0:
        raise UserError(f"{checkpoint}: already trained for {config.epochs} epochs and no "
                        f"best network recorded")
    network = Network(tuple(Layer(signs, thresholds) for signs, thresholds in best["layers"]))
    return network, history, best
