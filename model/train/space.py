"""The search space of ``bs4nn sweep``: which :class:`~.config.TrainConfig` options are fixed,
which take every value of a grid and which are drawn at random, read from a small TOML file
or from command-line specs, and checked before any trial starts.

A file (every table optional; option names as ``bs4nn train`` spells them, with ``-`` or
``_``)::

    samples = 1                   # times the grid is run (random options drawn anew each time)

    [fixed]                       # every trial
    dataset = "fashion-mnist"
    epochs = 18

    [grid]                        # every combination
    surrogate = [3, 10]
    initial-thresholds = [[30, 15], [60, 15]]

    [random]                      # drawn per trial
    lr = { loguniform = [0.001, 0.01] }
    shift = { choice = [0, 1] }

Distributions: ``uniform = [LOW, HIGH]``, ``loguniform = [LOW, HIGH]``, ``randint = [LOW,
HIGH]`` (both ends included) and ``choice = [VALUE, ...]``. On the command line the same is
``--grid surrogate=3,10`` and ``--random lr=loguniform:0.001,0.01`` (a tuple option's
elements separated by spaces: ``--grid "initial-thresholds=30 15,60 15"``).
"""

import dataclasses
import itertools
import math
import tomllib
import typing

from ..errors import UserError
from .config import TrainConfig, option_flag

__all__ = ["SearchSpace", "DISTRIBUTIONS", "parse_spec", "option_name", "distribution_of"]

#: Distribution name: the number of values it takes (``None``: one or more).
DISTRIBUTIONS = {"uniform": 2, "loguniform": 2, "randint": 2, "choice": None}
#: Grid combinations checked before a sweep starts; a larger grid is refused.
MAX_COMBINATIONS = 10_000
_FIELDS = {field.name: field for field in dataclasses.fields(TrainConfig)}
_TABLES = ("samples", "fixed", "grid", "random")


def option_name(name, source):
    """The :class:`TrainConfig` field called ``name`` (``lr``, ``initial-thresholds``)."""
    field_name = name.replace("-", "_")
    if field_name not in _FIELDS:
        raise UserError(f"{source}: unknown option {name!r} (the options are bs4nn train's: "
                        f"see bs4nn train --help)")
    return field_name


def _convert(field_name, value, source):
    """``value`` (from TOML, or a string from the command line) as the field's type."""
    field = _FIELDS[field_name]
    flag = option_flag(field_name)
    if typing.get_origin(field.type) is tuple:
        element, *rest = typing.get_args(field.type)
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise UserError(f"{source}: {flag} takes a list of values, got {value!r}")
        if rest != [Ellipsis] and len(items) != 1 + len(rest):
            raise UserError(f"{source}: {flag} takes {1 + len(rest)} values, got {value!r}")
        return [_scalar(element, item, flag, source) for item in items]
    return _scalar(field.type, value, flag, source)


def _scalar(kind, value, flag, source):
    if isinstance(value, str) and kind is not str:
        text = value.strip()
        if kind is bool:
            if text.lower() not in ("true", "false"):
                raise UserError(f"{source}: {flag} takes true or false, got {value!r}")
            return text.lower() == "true"
        try:
            value = kind(text)
        except ValueError:
            raise UserError(f"{source}: {flag} takes {_KIND_NAMES[kind]}, got "
                            f"{value!r}") from None
    accepted = {int: (int,), float: (int, float), str: (str,), bool: (bool,)}[kind]
    if not isinstance(value, accepted) or (kind is not bool and isinstance(value, bool)):
        raise UserError(f"{source}: {flag} takes {_KIND_NAMES[kind]}, got {value!r}")
    if kind is float and not math.isfinite(value):
        raise UserError(f"{source}: {flag} takes a finite number, got {value!r}")
    return kind(value)


_KIND_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def parse_spec(spec, source, random=False):
    """``NAME=V1,V2`` (``--grid``) or ``NAME=KIND:A,B`` (``--random``) as ``(name, values)``
    or ``(name, {KIND: [A, B]})``, values still strings."""
    name, equals, values = spec.partition("=")
    if not equals or not name.strip() or not values.strip():
        form = "NAME=KIND:A,B" if random else "NAME=V1,V2,..."
        raise UserError(f"{source} {spec!r}: expected {form}")
    name = name.strip()
    if not random:
        return name, values.split(",")
    kind, colon, values = values.partition(":")
    if not colon:
        raise UserError(f"{source} {spec!r}: expected NAME=KIND:A,B with KIND one of "
                        f"{', '.join(DISTRIBUTIONS)}")
    return name, {kind.strip(): values.split(",")}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """Options fixed for every trial, grid values (lists) and random distributions
    (``{kind: values}``), by :class:`TrainConfig` field name, values of the field's type
    (tuples as lists); ``samples`` runs of the grid."""

    fixed: dict
    grid: dict
    random: dict
    samples: int = 1

    @classmethod
    def from_file(cls, path):
        try:
            with open(path, "rb") as f:
                document = tomllib.load(f)
        except FileNotFoundError:
            raise UserError(f"{path}: no such search-space file") from None
        except IsADirectoryError:
            raise UserError(f"{path}: is a directory, not a search-space file") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UserError(f"{path}: not valid TOML ({error})") from None
        for key in document:
            if key not in _TABLES:
                raise UserError(f"{path}: unknown entry {key!r} (expected "
                                f"{', '.join(_TABLES)})")
        tables = {}
        for table in ("fixed", "grid", "random"):
            entries = document.get(table, {})
            if not isinstance(entries, dict):
                raise UserError(f"{path}: {table} must be a table ([{table}])")
            tables[table] = {option_name(name, f"{path}: [{table}]"): value
                             for name, value in entries.items()}
        for name, values in tables["grid"].items():
            if not isinstance(values, list):
                raise UserError(f"{path}: [grid] {option_flag(name)} must be a list of "
                                f"values, got {values!r}")
        samples = document.get("samples", 1)
        if not isinstance(samples, int) or isinstance(samples, bool):
            raise UserError(f"{path}: samples must be an integer, got {samples!r}")
        return cls.checked(tables["fixed"], tables["grid"], tables["random"], samples,
                           str(path))

    @classmethod
    def from_specs(cls, fixed, grid_specs, random_specs, samples=1):
        """From ``--grid``/``--random`` specs (:func:`parse_spec`) and the fixed options
        given as ``bs4nn train`` flags."""
        grid = {}
        for spec in grid_specs:
            name, values = parse_spec(spec, "--grid")
            grid[option_name(name, f"--grid {spec!r}")] = values
        random = {}
        for spec in random_specs:
            name, distribution = parse_spec(spec, "--random", random=True)
            random[option_name(name, f"--random {spec!r}")] = distribution
        return cls.checked(fixed, grid, random, samples, "command line")

    def merged(self, other):
        """This space with ``other``'s entries added (``other`` wins on ``samples`` when it
        is not 1); an option in both is refused."""
        for table in ("fixed", "grid", "random"):
            for name in getattr(self, table).keys() & getattr(other, table).keys():
                raise UserError(f"{option_flag(name)} is given both in the search-space file "
                                f"and on the command line")
        return SearchSpace.checked({**self.fixed, **other.fixed}, {**self.grid, **other.grid},
                                   {**self.random, **other.random},
                                   other.samples if other.samples != 1 else self.samples,
                                   "search space")

    @classmethod
    def checked(cls, fixed, grid, random, samples, source):
        """The space of raw entries, converted to the fields' types, each value checked by
        :class:`TrainConfig`, each grid combination too (with the random options at both
        ends of their ranges)."""
        if samples < 1:
            raise UserError(f"{source}: samples must be at least 1, got {samples}")
        seen = {}
        for table, entries in (("fixed", fixed), ("grid", grid), ("random", random)):
            for name in entries:
                if name in seen:
                    raise UserError(f"{source}: {option_flag(name)} is both {seen[name]} and "
                                    f"{table}")
                seen[name] = table
        fixed = {name: _convert(name, value, f"{source}: fixed")
                 for name, value in fixed.items()}
        grid = {name: [_convert(name, value, f"{source}: grid {option_flag(name)}")
                       for value in values] for name, values in grid.items()}
        random = {name: _distribution(name, spec, f"{source}: random {option_flag(name)}")
                  for name, spec in random.items()}
        for name, values in grid.items():
            if not values:
                raise UserError(f"{source}: grid {option_flag(name)} has no values")
        space = cls(fixed, grid, random, samples)
        space._check_combinations(source)
        return space

    @property
    def combinations(self):
        return math.prod(len(values) for values in self.grid.values())

    @property
    def swept(self):
        """Names of the options that vary between trials."""
        return [*self.grid, *self.random]

    def _check_combinations(self, source):
        if self.combinations > MAX_COMBINATIONS:
            raise UserError(f"{source}: the grid has {self.combinations:,} combinations "
                            f"(at most {MAX_COMBINATIONS:,})")
        ends = [_ends(*distribution_of(spec)) for spec in self.random.values()]
        for values in itertools.product(*self.grid.values()):
            for drawn in itertools.product(*ends):
                options = {**self.fixed, **dict(zip(self.grid, values, strict=True)),
                           **dict(zip(self.random, drawn, strict=True))}
                try:
                    TrainConfig(**options)
                except UserError as error:
                    raise UserError(f"{source}: {error}{self._trial_shown(options, error)}") \
                        from None

    def _trial_shown(self, options, error):
        """`` (trial --lr 0.1, ...)``: the swept values of a trial that ``error`` refused,
        unless the fixed options alone are refused the same way."""
        try:
            TrainConfig(**self.fixed)
        except UserError as fixed_error:
            if str(fixed_error) == str(error):
                return ""
        shown = ", ".join(f"{option_flag(name)} {_spec_value(value)}"
                          for name, value in options.items() if name not in self.fixed)
        return f" (trial {shown})" if shown else ""

    def max_epochs(self):
        """The most epochs any trial trains (ASHA's horizon)."""
        if "epochs" in self.grid:
            return max(self.grid["epochs"])
        if "epochs" in self.random:
            kind, values = distribution_of(self.random["epochs"])
            return max(values) if kind == "choice" else int(values[1])
        return self.fixed.get("epochs", TrainConfig().epochs)

    def command_words(self):
        """``bs4nn sweep`` arguments that give this space back (:meth:`from_specs`)."""
        words = []
        for name, value in self.fixed.items():
            if isinstance(value, bool):
                words += [option_flag(name)] if value else []
            else:
                words += [option_flag(name), *map(str, value if isinstance(value, list)
                                                  else [value])]
        for name, values in self.grid.items():
            words += ["--grid", f"{_spelling(name)}={','.join(map(_spec_value, values))}"]
        for name, spec in self.random.items():
            kind, values = distribution_of(spec)
            words += ["--random",
                      f"{_spelling(name)}={kind}:{','.join(map(_spec_value, values))}"]
        return words + (["--samples", str(self.samples)] if self.samples != 1 else [])

    def to_json(self):
        return {"samples": self.samples, "fixed": self.fixed, "grid": self.grid,
                "random": self.random}


def _spelling(name):
    return name.replace("_", "-")


def _spec_value(value):
    """A value as :func:`parse_spec` reads it (a tuple option's elements spaced)."""
    return " ".join(map(str, value)) if isinstance(value, list) else str(value).lower() \
        if isinstance(value, bool) else str(value)


def _distribution(name, spec, source):
    if not isinstance(spec, dict) or len(spec) != 1:
        raise UserError(f"{source}: expected one distribution, e.g. {{ uniform = [0.1, 1] }} "
                        f"(one of {', '.join(DISTRIBUTIONS)}), got {spec!r}")
    (kind, values), = spec.items()
    if kind not in DISTRIBUTIONS:
        raise UserError(f"{source}: unknown distribution {kind!r} (one of "
                        f"{', '.join(DISTRIBUTIONS)})")
    if not isinstance(values, list) or not values:
        raise UserError(f"{source}: {kind} takes a list of values, got {values!r}")
    if kind == "choice":
        return {kind: [_convert(name, value, source) for value in values]}
    if len(values) != DISTRIBUTIONS[kind]:
        raise UserError(f"{source}: {kind} takes [LOW, HIGH], got {values!r}")
    field_type = _FIELDS[name].type
    if field_type not in (int, float) or (kind == "randint") != (field_type is int):
        wanted = "an integer option" if kind == "randint" else "a number option"
        raise UserError(f"{source}: {kind} needs {wanted}")
    low, high = (_convert(name, value, source) for value in values)
    if not low < high:
        raise UserError(f"{source}: {kind} needs LOW < HIGH, got [{low}, {high}]")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"{source}: loguniform needs LOW > 0, got {low}")
    return {kind: [low, high]}


def distribution_of(distribution):
    """``(kind, values)`` of a checked ``{kind: values}``."""
    (kind, values), = distribution.items()
    return kind, values


def _ends(kind, values):
    """Values that stand for a distribution's range when checking it."""
    return values if kind == "choice" else [values[0], values[1]]
