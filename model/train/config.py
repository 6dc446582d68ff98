"""The training configuration: every option once, with its help text, its check and how it
is recorded.

Each :class:`TrainConfig` field carries an :class:`Option` in its metadata. The command line
(:mod:`bs4nn.commands.train`) builds its options from them, :meth:`TrainConfig.command`
writes the ``bs4nn train`` command that reproduces a configuration from them, and
:meth:`TrainConfig.__post_init__` runs their checks, so a bad value raises the same
:class:`~bs4nn.model.errors.UserError` from the library as from the command line.
"""

import dataclasses
import shlex
from collections.abc import Callable

from .. import data
from ..errors import UserError
from .teacher import TEACHER_HIDDEN

__all__ = ["TrainConfig", "Option", "DEFAULT_HIDDEN", "N_CLASSES", "option_flag"]

DEFAULT_HIDDEN = {"mnist": (600,), "fashion-mnist": (1000,)}
N_CLASSES = 10


@dataclasses.dataclass(frozen=True)
class Option:
    """How one :class:`TrainConfig` field appears on the command line.

    ``check`` is ``(predicate, message)``: a value for which ``predicate`` is false raises a
    :class:`UserError` of ``message.format(flag=..., value=...)`` (tuples shown as lists).
    ``recorded`` says whether :meth:`TrainConfig.command` writes the field even when it has
    its default value: always (``True``), never (``False``) or when ``recorded(config)``. A
    ``bool`` field is a flag (default ``False``), written only when set.
    """

    help: str
    check: tuple | None = None
    metavar: str | tuple | None = None
    choices: tuple | None = None
    recorded: bool | Callable = True


def option_flag(name):
    """The command-line spelling of a field: ``batch_size`` → ``--batch-size``."""
    return "--" + name.replace("_", "-")


def _field(default, help, check=None, **option):
    return dataclasses.field(default=default,
                             metadata={"option": Option(help, check, **option)})


def _snapshot_loss(config):
    return config.loss == "snapshot"


_POSITIVE = (lambda value: value > 0, "{flag} must be positive, got {value}")
_NON_NEGATIVE = (lambda value: value >= 0, "{flag} must be non-negative, got {value}")
_AT_LEAST_1 = (lambda value: value >= 1, "{flag} must be at least 1, got {value}")
_INTERVALS = {"[0, 1)": lambda value: 0 <= value < 1, "(0, 1]": lambda value: 0 < value <= 1,
              "(0, 1)": lambda value: 0 < value < 1}


def _interval(interval):
    """The check that a value lies in ``interval``, one of ``[0, 1)``, ``(0, 1]``, ``(0, 1)``."""
    return _INTERVALS[interval], f"{{flag}} must lie in {interval}, got {{value}}"


def _integers(low, high):
    """The check that a value lies in ``low..high``."""
    return ((lambda value: low <= value <= high),
            f"{{flag}} must lie in {low}..{high}, got {{value}}")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a training run's result (recorded in the weights file).

    ``hidden`` left empty takes the dataset's default (:data:`DEFAULT_HIDDEN`). Every value
    is checked on construction; a bad one raises :class:`UserError`.
    """

    dataset: str = _field("mnist", "mnist or fashion-mnist", (
        lambda value: value in data.DATASETS,
        f"unknown dataset {{value!r}} (choose from {', '.join(data.DATASETS)})"))
    hidden: tuple[int, ...] = _field(
        (), "hidden layer sizes (default 600 for mnist, 1000 for fashion-mnist)",
        (lambda value: all(n >= 1 for n in value), "{flag} sizes must be positive, got {value}"),
        metavar="N")
    epochs: int = _field(15, "passes over the training images", _AT_LEAST_1)
    batch_size: int = _field(100, "images per minibatch", _AT_LEAST_1)
    lr: float = _field(0.01, "Adam learning rate of the latent weights", _POSITIVE)
    threshold_lr: float = _field(0.03, "Adam learning rate of the thresholds (potential units)",
                                 _NON_NEGATIVE)
    temperature: float = _field(1.0, "softmax temperature over spike times, in steps",
                                _POSITIVE)
    potential_weight: float = _field(0.2, "weight of the crossing potential in the loss's spike "
                                     "times (models the decision's tie-break)", _NON_NEGATIVE)
    margin: float = _field(0.0, "steps by which the true class must win in the loss",
                           _NON_NEGATIVE)
    recruit_rate: float = _field(0.05, "hidden neurons spiking before fewer than this fraction "
                                 "of a batch's decisions are pushed to fire earlier",
                                 _interval("[0, 1)"))
    recruit_strength: float = _field(0.0, "strength of that push (0: off)", _NON_NEGATIVE)
    window: float = _field(0.0, "steps over which late inputs still receive error (0: none)",
                           _NON_NEGATIVE)
    near_miss: float = _field(2.0, "hidden neurons that missed the decision by a potential gap "
                              "g get exp(-g / S) of the error they would get had they spiked "
                              "(0: off)", _NON_NEGATIVE)
    init_scale: float = _field(0.1, "latent weights start uniform in [-S, S]",
                               _interval("(0, 1]"))
    firing_fraction: float = _field(0.1, "initial thresholds make each neuron fire on this "
                                    "fraction of images", _interval("(0, 1)"))
    average: float = _field(0.0, "select and deploy the exponential moving average of the "
                            "latent weights and thresholds, with this decay per minibatch "
                            "(0: off, the latent values themselves)", _interval("[0, 1)"),
                            recorded=False)
    distill: float = _field(0.0, "snapshot loss: weight of the distillation from a "
                            f"real-valued teacher, a 784-{TEACHER_HIDDEN}-10 ReLU network "
                            "trained first (0: off)",
                            _interval("[0, 1)"), recorded=False)
    distill_temperature: float = _field(3.0, "temperature of the distillation (with "
                                        "--distill)", _POSITIVE,
                                        recorded=lambda config: config.distill > 0)
    shift: int = _field(0, "largest random shift of training images, in pixels",
                        _integers(0, 4))
    seed: int = _field(0, "seed of every random draw (initialisation, order, shifts, flips, "
                       "dropout)")
    flip: bool = _field(False, "mirror a random half of the training images left to right",
                        recorded=False)
    dropout: float = _field(0.0, "drop each hidden spike with this probability in training "
                            "(snapshot loss only)", _interval("[0, 1)"), recorded=False)
    train_subset: int = _field(0, "train on the first N training images only (smoke tests)",
                               _integers(0, data.N_TRAIN), metavar="N", recorded=False)
    validation_subset: int = _field(0, "select the epoch on the first N validation images only "
                                    "(smoke tests; default all)",
                                    _integers(0, data.N_VALIDATION), metavar="N",
                                    recorded=False)
    calibrate: int = _field(10000, "after training, tune the output thresholds on N training "
                            "images (0: off)", _integers(0, data.N_TRAIN), metavar="N")
    calibrate_split: str = _field(
        "train", "calibrate on N training images (kept if validation does not drop), or on "
        "the first half of the validation split (kept if the second half does not drop)",
        choices=("train", "validation"), recorded=False)
    eval_train: int = _field(2000, "training images evaluated exactly after each epoch (for "
                             "the log and curves)", _integers(1, data.N_TRAIN), metavar="N",
                             recorded=False)
    loss: str = _field("snapshot", "snapshot: cross-entropy of the output potentials at the "
                       "decision step (default); spike-time: BS4NN-style temporal loss",
                       choices=("snapshot", "spike-time"))
    beta: float = _field(0.25, "snapshot loss: softmax scale of the output potentials",
                         _POSITIVE, recorded=_snapshot_loss)
    surrogate: float = _field(3.0, "snapshot loss: width of the hidden neurons' surrogate "
                              "gradient, in potential units", _POSITIVE,
                              recorded=_snapshot_loss)
    initial_thresholds: tuple[float, float] = _field(
        (20.0, 15.0), "snapshot loss: starting thresholds",
        (lambda value: min(value) >= 0, "{flag} must be non-negative, got {value}"),
        metavar=("HIDDEN", "OUTPUT"), recorded=_snapshot_loss)

    def __post_init__(self):
        for field in dataclasses.fields(self):
            if isinstance(field.default, tuple):
                object.__setattr__(self, field.name, tuple(getattr(self, field.name)))
        if not self.hidden:
            object.__setattr__(self, "hidden", DEFAULT_HIDDEN.get(self.dataset, ()))
        for field in dataclasses.fields(self):
            option, value = field.metadata["option"], getattr(self, field.name)
            flag = option_flag(field.name)
            if option.choices and value not in option.choices:
                raise UserError(f"{flag} must be one of {', '.join(option.choices)}, got "
                                f"{value!r}")
            if option.check and not option.check[0](value):
                shown = list(value) if isinstance(value, tuple) else value
                raise UserError(option.check[1].format(flag=flag, value=shown))
        for name in ("dropout", "distill"):
            if getattr(self, name) and self.loss != "snapshot":
                raise UserError(f"{option_flag(name)} needs --loss snapshot")
        if self.train_subset and self.train_subset < self.batch_size:
            raise UserError(f"--train-subset {self.train_subset} is smaller than --batch-size "
                            f"{self.batch_size}")

    @property
    def sizes(self):
        return [data.IMAGE_SIZE, *self.hidden, N_CLASSES]

    def command(self):
        """The ``bs4nn train`` command line reproducing this configuration.

        A field is written when it differs from its default or its :class:`Option` records
        it anyway, in field order; parsing the command gives back an equal configuration.
        """
        words = ["bs4nn", "train"]
        for field in dataclasses.fields(self):
            option, value = field.metadata["option"], getattr(self, field.name)
            recorded = option.recorded(self) if callable(option.recorded) else option.recorded
            if value == field.default and not recorded:
                continue
            flag = option_flag(field.name)
            if isinstance(value, bool):
                words += [flag] if value else []
            elif isinstance(value, tuple):
                words += [flag, *map(str, value)]
            else:
                words += [flag, str(value)]
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
                + (f", moving average of the latent values (decay {self.average}) deployed"
                   if self.average else "")
                + (f", hidden spikes dropped with probability {self.dropout} in training"
                   if self.dropout else "")
                + (f", distilled from a 784-{TEACHER_HIDDEN}-10 ReLU teacher (weight "
                   f"{self.distill:g}, temperature {self.distill_temperature:g})"
                   if self.distill else ""))
