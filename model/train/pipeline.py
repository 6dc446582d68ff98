"""A whole training run, as ``bs4nn train`` makes it: train, plot, calibrate, test, save."""

import os
import time
from pathlib import Path

from .. import data
from ..errors import UserError
from ..network import Network
from .calibration import calibrate
from .curves import plot_curves
from .loop import CHECKPOINT_NAME, evaluate, train

__all__ = ["train_and_save"]


def train_and_save(config, out=None, run_dir=None, curves=None, resume=False, stop_after=None,
                   progress_bar=True, on_epoch=None):
    """Train per ``config`` (:func:`.loop.train`), then plot the curves, calibrate the output
    thresholds (when ``config.calibrate``), evaluate on the test split and save the network
    with its metadata; every step is logged to stdout and ``<run_dir>/train.log``.

    ``out`` defaults to ``weights/<dataset>-<sizes>.npz``, ``run_dir`` to
    ``runs/<dataset>``, ``curves`` to ``<run_dir>/curves.png``. Returns the path written, or
    ``None`` when ``stop_after`` ended the run before its last epoch. ``on_epoch`` is
    :func:`.loop.train`'s per-epoch callback.
    """
    if stop_after is not None and stop_after < 1:
        raise UserError(f"--stop-after must be at least 1, got {stop_after}")
    sizes = "-".join(map(str, config.sizes))
    out = Path(out or Path("weights") / f"{config.dataset}-{sizes}.npz")
    run_dir = Path(run_dir or Path("runs") / config.dataset)
    curves = Path(curves or run_dir / "curves.png")
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
    network, history, best = train(config, run_dir, resume=resume, stop_after=stop_after,
                                   log=log, progress_bar=progress_bar, on_epoch=on_epoch)
    if len(history) < config.epochs:
        log(f"stopped after epoch {len(history)} of {config.epochs}; continue with --resume "
            f"(checkpoint {run_dir / CHECKPOINT_NAME})")
        return None
    plot_curves(history, curves, f"{config.dataset} {sizes}")
    validation = best["validation"]
    calibration = None
    if config.calibrate:
        network, validation, calibration = calibrate(network, config, validation, log)
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
    return out
