"""``bs4nn train``: the options are the :class:`~bs4nn.model.train.TrainConfig` fields, plus
where the run writes and how it runs; the work is :func:`~bs4nn.model.train.train_and_save`."""

import argparse
import dataclasses
import typing

from ..model.train import TrainConfig, option_flag, train_and_save

__all__ = ["add_arguments", "add_config_arguments", "config_from_args", "run"]


def _keywords(field, defaults):
    """``add_argument`` keywords of a :class:`TrainConfig` field, from its type and option;
    without ``defaults``, an option not given is left out of the parsed arguments."""
    option = field.metadata["option"]
    keywords = {"help": option.help}
    if not defaults:
        keywords["default"] = argparse.SUPPRESS
    if field.type is bool:
        return keywords | {"action": "store_true"}
    keywords.setdefault("default", field.default)
    if typing.get_origin(field.type) is tuple:
        element, *rest = typing.get_args(field.type)
        keywords |= {"type": element, "nargs": "+" if rest == [Ellipsis] else 1 + len(rest)}
    else:
        keywords["type"] = field.type
    if option.metavar is not None:
        keywords["metavar"] = option.metavar
    if option.choices is not None:
        keywords["choices"] = option.choices
    return keywords


def add_config_arguments(group, defaults=True):
    """One option per :class:`TrainConfig` field (``bs4nn sweep`` takes them too, as the
    options every trial shares, ``defaults=False``)."""
    for field in dataclasses.fields(TrainConfig):
        group.add_argument(option_flag(field.name), **_keywords(field, defaults))


def add_arguments(parser):
    add_config_arguments(parser.add_argument_group("training (recorded in the weights file)"))
    running = parser.add_argument_group("where the run writes and how it runs")
    running.add_argument("--stop-after", type=int, default=None, metavar="N",
                         help="stop this invocation after N epochs (continue with --resume)")
    running.add_argument("--out", default=None,
                         help="weights file (default weights/<dataset>-784-<hidden>-10.npz)")
    running.add_argument("--run-dir", default=None,
                         help="checkpoints and curves (default runs/<dataset>)")
    running.add_argument("--resume", action="store_true",
                         help="continue from the checkpoint in the run directory")
    running.add_argument("--curves", default=None,
                         help="training curves PNG (default <run-dir>/curves.png)")
    running.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args):
    """The :class:`TrainConfig` of parsed arguments (checked: raises ``UserError``)."""
    return TrainConfig(**{field.name: getattr(args, field.name)
                          for field in dataclasses.fields(TrainConfig)})


def run(args):
    train_and_save(config_from_args(args), out=args.out, run_dir=args.run_dir,
                   curves=args.curves, resume=args.resume, stop_after=args.stop_after,
                   progress_bar=not args.no_progress)
    return 0
