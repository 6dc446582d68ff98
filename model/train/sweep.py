"""A hyperparameter search over the trainer's options on Ray Tune (``bs4nn sweep``).

Every trial is a :func:`~.pipeline.train_and_save` run of one :class:`~.config.TrainConfig`,
in its own folder ``<out_dir>/trials/<trial id>/`` (``train.log``, ``checkpoint.npz``,
``curves.png`` and, once it has run all its epochs, ``weights.npz``, whose metadata hold the
``bs4nn train`` command that reproduces it). Each epoch's exact validation accuracy is
reported to Tune, so that ASHA can stop poor trials early. The trials are selected on the
validation split only. Tune keeps its experiment in ``<out_dir>/tune``: a sweep interrupted
(Ctrl-C) and started again with the same search space resumes there, each unfinished trial
from its last epoch's checkpoint.

:func:`run_sweep` returns the summary that :func:`write_summary` writes: ``sweep.md`` (a
table), ``sweep.json``, ``validation.png`` (validation accuracy per trial against epochs),
and the best trial's weights file copied to ``best.npz``.
"""

import json
import re
import shlex
import tempfile
from pathlib import Path

from ..cluster import ray_session
from ..errors import UserError
from ..network import Network, atomic_write
from .config import TrainConfig, option_flag
from .loop import CHECKPOINT_NAME, checkpoint_history
from .pipeline import train_and_save
from .space import distribution_of

__all__ = ["run_sweep", "write_summary", "summary_table", "Resources", "Asha"]

SPACE_NAME = "space.json"
EXPERIMENT_NAME = "tune"
WEIGHTS_NAME = "weights.npz"
#: Figures reported to Tune after every epoch (from the trainer's epoch record).
REPORTED = ("epoch", "validation", "validation_lenient", "train", "loss", "mean_step",
            "no_fire")


class Resources:
    """What each trial asks of Ray: CPUs and GiB of memory (Ray runs as many trials at once
    as the machine or cluster has both for)."""

    def __init__(self, cpus=1, memory_gib=2.0):
        if cpus < 1:
            raise UserError(f"--cpus-per-trial must be at least 1, got {cpus}")
        if memory_gib <= 0:
            raise UserError(f"--memory-per-trial must be positive, got {memory_gib}")
        self.cpus, self.memory_gib = cpus, memory_gib

    def ray(self):
        return {"cpu": self.cpus, "memory": int(self.memory_gib * 2**30)}


class Asha:
    """ASHA early stopping on the validation accuracy: at epochs ``grace``, ``grace·η``,
    ``grace·η²``, … a trial goes on only if it is in the best ``1/η`` of the trials there."""

    def __init__(self, grace=1, reduction_factor=2):
        if grace < 1:
            raise UserError(f"--grace-period must be at least 1, got {grace}")
        if reduction_factor <= 1:
            raise UserError(f"--reduction-factor must be greater than 1, got "
                            f"{reduction_factor}")
        self.grace, self.reduction_factor = grace, reduction_factor

    def scheduler(self, max_epochs):
        from ray.tune.schedulers import ASHAScheduler

        return ASHAScheduler(time_attr="epoch", max_t=max_epochs,
                             grace_period=min(self.grace, max_epochs),
                             reduction_factor=self.reduction_factor)

    def to_json(self):
        return {"grace_period": self.grace, "reduction_factor": self.reduction_factor}


def _param_space(space):
    from ray import tune

    params = dict(space.fixed)
    params |= {name: tune.grid_search(values) for name, values in space.grid.items()}
    for name, spec in space.random.items():
        kind, values = distribution_of(spec)
        if kind == "choice":
            params[name] = tune.choice(values)
        elif kind == "randint":
            params[name] = tune.randint(values[0], values[1] + 1)
        else:
            params[name] = getattr(tune, kind)(*values)
    return params


def _trial_dir(out_dir, trial_id):
    return Path(out_dir) / "trials" / trial_id


def _report_epoch(record):
    """Report one epoch to Tune, with a small Tune checkpoint saying which epoch it was."""
    from ray import tune

    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "epoch.json").write_text(json.dumps({"epoch": record["epoch"]}))
        tune.report({key: record[key] for key in REPORTED},
                    checkpoint=tune.Checkpoint.from_directory(folder))


def _reported_epochs():
    """Epochs this trial reported to Tune before it was restored (0 for a new trial)."""
    from ray import tune

    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return 0
    with checkpoint.as_directory() as folder:
        return json.loads(Path(folder, "epoch.json").read_text())["epoch"]


def _trial(params, out_dir):
    """One trial, in a Ray worker: train (resuming from the trial's own checkpoint when it
    has one) and report every epoch.

    The last epoch is reported only once the weights file is written: Tune ends a trial
    (ASHA at its horizon) as soon as it has the last result it asked for.
    """
    from ray import tune

    config = TrainConfig(**params)
    run_dir = _trial_dir(out_dir, tune.get_context().get_trial_id())
    checkpoint = run_dir / CHECKPOINT_NAME
    resume = checkpoint.exists()
    history = checkpoint_history(checkpoint) if resume else []
    # Epochs trained but not reported when the sweep stopped are reported now.
    for record in history[_reported_epochs():config.epochs - 1]:
        _report_epoch(record)

    def on_epoch(record):
        history.append(record)
        if record["epoch"] < config.epochs:
            _report_epoch(record)

    train_and_save(config, out=run_dir / WEIGHTS_NAME, run_dir=run_dir, resume=resume,
                   progress_bar=False, on_epoch=on_epoch)
    _report_epoch(history[-1])


def _check_out_dir(out_dir, recorded):
    """Refuse to resume a sweep of another search space in ``out_dir``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out-dir {out_dir}: is not a directory")
    path = out_dir / SPACE_NAME
    if not path.exists():
        return
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise UserError(f"{path}: unreadable ({error})") from None
    if saved != recorded:
        raise UserError(f"{out_dir}: holds a sweep of another search space or base options "
                        f"({path}); use another --out-dir, or remove it to start over")


def sweep_command(space, asha, search_seed, out_dir):
    """The ``bs4nn sweep`` command that runs (or resumes) this sweep."""
    words = ["bs4nn", "sweep", *space.command_words()]
    if asha:
        words += ["--asha", "--grace-period", str(asha.grace), "--reduction-factor",
                  f"{asha.reduction_factor:g}"]
    words += ["--search-seed", str(search_seed)] if search_seed else []
    return shlex.join(words + ["--out-dir", str(out_dir)])


def run_sweep(space, out_dir, *, resources=None, asha=None, address=None, search_seed=0):
    """Run (or resume) the sweep of ``space`` (:class:`~.space.SearchSpace`) with its
    outputs in ``out_dir``, on a local Ray (one trial per :class:`Resources`) or on the Ray
    cluster at ``address``; ``asha`` (:class:`Asha`) stops poor trials early.

    Returns the summary (:func:`write_summary` has written it); its ``interrupted`` is true
    when the sweep was stopped before every trial ended (run it again to resume).
    """
    resources = resources or Resources()
    out_dir = Path(out_dir).resolve()
    recorded = {"space": space.to_json(), "asha": asha.to_json() if asha else None,
                "search_seed": search_seed}
    _check_out_dir(out_dir, recorded)
    experiment = out_dir / EXPERIMENT_NAME
    with ray_session(address):
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_write(out_dir / SPACE_NAME, "w") as f:
            json.dump(recorded, f, indent=2)
        from ray import tune
        from ray.tune.search import BasicVariantGenerator

        trainable = tune.with_resources(tune.with_parameters(_trial, out_dir=str(out_dir)),
                                        resources.ray())
        if tune.Tuner.can_restore(experiment):
            print(f"resuming the sweep in {experiment}", flush=True)
            tuner = tune.Tuner.restore(str(experiment), trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space=_param_space(space),
                tune_config=tune.TuneConfig(
                    metric="validation", mode="max", num_samples=space.samples,
                    scheduler=asha.scheduler(space.max_epochs()) if asha else None,
                    search_alg=BasicVariantGenerator(random_state=search_seed)),
                run_config=tune.RunConfig(
                    name=EXPERIMENT_NAME, storage_path=str(out_dir), verbose=1,
                    checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
        results = tuner.fit()
        trials = [_trial_summary(result, out_dir, space) for result in results]
    trials.sort(key=lambda trial: trial["trial"])
    command = sweep_command(space, asha, search_seed, out_dir)
    summary = {"command": command, "out_dir": str(out_dir), **recorded, "trials": trials,
               "best": None,
               "interrupted": any(trial["status"] == "unfinished" for trial in trials)}
    finished = [trial for trial in trials if trial["status"] == "finished"]
    if finished:
        best = max(finished, key=lambda trial: trial["validation"])
        summary["best"] = {"trial": best["trial"], "validation": best["validation"],
                           "weights": str(out_dir / "best.npz"), "command": best["command"],
                           "strict_test_accuracy": best["strict_test_accuracy"]}
        with atomic_write(out_dir / "best.npz", "wb") as f:
            f.write(Path(best["weights"]).read_bytes())
    write_summary(summary, out_dir)
    return summary


def _trial_summary(result, out_dir, space):
    """One trial's row: its swept options, how it ended and its figures."""
    trial_id = result.metrics.get("trial_id") or _trial_id_of(Path(result.path).name)
    run_dir = _trial_dir(out_dir, trial_id)
    checkpoint = run_dir / CHECKPOINT_NAME
    history = checkpoint_history(checkpoint) if checkpoint.exists() else []
    config = TrainConfig(**{name: result.config[name] for name in result.config})
    row = {"trial": trial_id, "options": {name: result.config[name] for name in space.swept},
           "epochs": len(history), "of_epochs": config.epochs,
           "validation_per_epoch": [record["validation"] for record in history],
           "best_epoch": None, "best_epoch_validation": None, "validation": None,
           "strict_test_accuracy": None, "seconds": round(sum(r["seconds"] for r in history), 1),
           "command": config.command(), "log": str(run_dir / "train.log"), "weights": None}
    if history:
        best = max(history, key=lambda record: record["validation"])
        row["best_epoch"], row["best_epoch_validation"] = best["epoch"], best["validation"]
    weights = run_dir / WEIGHTS_NAME
    if result.error is not None:
        message = str(getattr(result.error, "cause", None) or result.error).strip()
        row["status"] = "error: " + (message.splitlines() or ["?"])[-1]
    elif weights.exists():
        metadata = Network.load(weights).metadata
        row |= {"status": "finished", "weights": str(weights),
                "validation": metadata["validation_accuracy"],
                "strict_test_accuracy": metadata["strict_test_accuracy"],
                "command": metadata["command"]}
    elif result.metrics.get("done"):
        row["status"] = "stopped early"
    else:
        row["status"] = "unfinished"
    return row


def _trial_id_of(folder_name):
    """The trial id in the name of Tune's folder for a trial that never reported
    (``_trial_<id>_<index>_<options>_<date>``)."""
    match = re.match(r"_trial_([0-9a-f]+_\d+)_", folder_name)
    return match.group(1) if match else folder_name


def summary_table(summary):
    """The sweep's markdown table: one row per trial, the swept options first."""
    names = list(summary["space"]["grid"]) + list(summary["space"]["random"])
    best = summary["best"]["trial"] if summary["best"] else None
    titles = ["trial", *(option_flag(name) for name in names), "status", "epochs",
              "best epoch (validation)", "validation (selected, calibrated)", "seconds"]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for trial in summary["trials"]:
        cells = [f"**{trial['trial']}**" if trial["trial"] == best else trial["trial"]]
        cells += [_shown(trial["options"][name]) for name in names]
        cells += [trial["status"], f"{trial['epochs']}/{trial['of_epochs']}",
                  "–" if trial["best_epoch"] is None
                  else f"{trial['best_epoch']} ({trial['best_epoch_validation']:.2%})",
                  "–" if trial["validation"] is None else f"{trial['validation']:.2%}",
                  f"{trial['seconds']:,.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _shown(value):
    if isinstance(value, list | tuple):
        return " ".join(map(_shown, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def plot_validation(summary, path):
    """Validation accuracy per trial against epochs (the best trial drawn bold)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = list(summary["space"]["grid"]) + list(summary["space"]["random"])
    best = summary["best"]["trial"] if summary["best"] else None
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for trial in summary["trials"]:
        accuracy = trial["validation_per_epoch"]
        if not accuracy:
            continue
        label = trial["trial"] + ": " + ", ".join(
            f"{option_flag(name)[2:]} {_shown(trial['options'][name])}" for name in names)
        axis.plot(range(1, len(accuracy) + 1), [100 * a for a in accuracy], "o-",
                  linewidth=2.5 if trial["trial"] == best else 1, markersize=3,
                  label=label + (" (best)" if trial["trial"] == best
                                 else "" if trial["status"] == "finished"
                                 else f" ({trial['status']})"))
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_xlabel("epoch")
    axis.set_ylabel("validation accuracy, strict (%)")
    axis.set_title(f"bs4nn sweep: {len(summary['trials'])} trials")
    axis.grid(True, alpha=0.3)
    if len(summary["trials"]) <= 20:
        axis.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    with atomic_write(path, "wb") as f:
        figure.savefig(f, format="png", dpi=110)
    plt.close(figure)


def write_summary(summary, out_dir):
    """``sweep.md``, ``sweep.json`` and ``validation.png`` in ``out_dir``."""
    out_dir = Path(out_dir)
    header = (f"`{summary['command']}`: {len(summary['trials'])} trials, selected on the "
              f"validation split" + (" (interrupted: run it again to resume)"
                                     if summary["interrupted"] else "") + ".\n")
    if summary["best"]:
        header += (f"\nBest: trial {summary['best']['trial']}, validation "
                   f"{summary['best']['validation']:.2%}, `{summary['best']['weights']}` "
                   f"(`{summary['best']['command']}`).\n")
    with atomic_write(out_dir / "sweep.md", "w") as f:
        f.write(header + "\n" + summary_table(summary) + "\n")
    with atomic_write(out_dir / "sweep.json", "w") as f:
        json.dump(summary, f, indent=2)
    plot_validation(summary, out_dir / "validation.png")
