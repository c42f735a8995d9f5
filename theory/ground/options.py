"""Command-line options derived from frozen config dataclasses: each setting is declared once.

  dim: int = option(50, "input dimension d: the shallow model's failure grows with d/K")

is an ordinary dataclass field whose metadata carries the help text (and optionally ``flag=``, the
option's name when it is not ``--field-name``, and ``choices=``). ``add_options(parser, Config)``
turns every field into one option, its type read from the annotation:

  int, float, str    a value (numbers must be finite)         bool       a switch (store_true)
  tuple[X, ...]      a comma-separated list of X ('' = empty)  X | None   an optional X (default None)
  tuple[X, ...] with ``repeat=True``: one X per occurrence of the option (``--group A --group B``),
             read by ``parse``; absent, the field keeps its default
  ``positional=True``: a required positional argument named by ``metavar`` (``compare RUN_DIR``)

``config_from_args(Config, args)`` builds the config from the parsed namespace; the config's own
``__post_init__`` then checks the ranges and raises ParameterError naming the field, which
``flags(Config)`` maps back to the option.

Two more declarations are checked before any work starts, once the config is built from the command line:

  ``path="file"`` / ``path="folder"``   an output location: writable, or creatable where the command creates
             folders (theory.ground.paths; checked by ``config_from_args``, a ParameterError naming the field)
  ``only_with="simulate"`` / ``not_with="theory_only"``   the option means something only when that other field
             is set (truthy), or only when it is not: given in the other mode it would be ignored, so
             ``refuse_ignored`` refuses it (UsageError naming both options)
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing

from theory.ground import paths
from theory.ground.errors import UsageError, require_int


def option(default, help: str, *, flag: str | None = None, choices=None, parse=None, metavar: str | None = None,
           repeat: bool = False, positional: bool = False, path: str | None = None, only_with: str | None = None,
           not_with: str | None = None):
    """A config field with its command-line help (``flag`` overrides ``--field-name``; ``parse``, a
    converter from the option's text, overrides the one read from the annotation, with ``metavar``;
    ``repeat``: the option may be given several times, each occurrence one element of a tuple field;
    ``positional``: a required argument without a flag, named ``metavar`` (``default`` is only the
    dataclass's, for building the config in Python); ``path``: 'file' or 'folder', an output location checked
    before any work; ``only_with``/``not_with``: the field that must be set/unset for this option to mean
    anything)."""
    if positional and not metavar:
        raise TypeError("a positional option needs its metavar (the name the usage line and errors show)")
    if path not in (None, "file", "folder"):
        raise TypeError(f"path must be 'file' or 'folder', not {path!r}")
    metadata = {"help": help, "flag": flag, "choices": tuple(choices) if choices is not None else None,
                "parse": parse, "metavar": metavar, "repeat": repeat, "positional": positional, "path": path,
                "only_with": only_with, "not_with": not_with}
    return dataclasses.field(default=default, metadata=metadata)


def flag_of(field: dataclasses.Field) -> str:
    """What the user types for ``field``: its option (``--field-name``), or a positional argument's metavar."""
    if field.metadata.get("positional"):
        return field.metadata["metavar"]
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def flags(*configs) -> dict[str, str]:
    """Field name -> option, over ``configs``: how a ParameterError's name maps to what the user typed."""
    return {f.name: flag_of(f) for config in configs for f in dataclasses.fields(config)}


def takes_value(*configs) -> set[str]:
    """The options of ``configs`` that read a value (all but the switches)."""
    hints = {name: hint for config in configs for name, hint in typing.get_type_hints(config).items()}
    return {flag_of(f) for config in configs for f in dataclasses.fields(config)
            if hints[f.name] is not bool and not f.metadata.get("positional")}


def _finite(kind, choices=None):
    """argparse ``type=`` for int or float: one-line errors, no NaN or infinity, optional choices."""
    valid = f" (valid: {','.join(map(str, choices))})" if choices else ""

    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}{valid}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        if choices and value not in choices:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid choice{valid}")
        return value

    convert.__name__ = kind.__name__
    return convert


def _element(kind, choices):
    if kind in (int, float):
        return _finite(kind, choices)
    if choices:
        return _finite(str, choices)
    return kind


def _list_of(kind, choices):
    """Comma-separated values of ``kind``; '' is the empty tuple."""
    convert_one = _element(kind, choices)

    def convert(text: str) -> tuple:
        return tuple(convert_one(part.strip()) for part in text.split(",") if part.strip())

    convert.__name__ = f"list of {kind.__name__}"
    return convert


def _unwrap_optional(hint):
    """X for ``X | None``; the hint itself otherwise."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) == 1:
            return args[0]
        raise TypeError(f"unsupported option type {hint}")
    return hint


def _argument(field: dataclasses.Field, hint) -> dict:
    """The add_argument keywords for one field."""
    if "help" not in field.metadata:
        raise TypeError(f"field {field.name!r} has no help text: declare it with option(default, help)")
    choices, default = field.metadata.get("choices"), field.default
    text = field.metadata["help"].replace("%", "%%")  # argparse formats help with %
    if field.metadata.get("repeat"):
        return {"type": field.metadata.get("parse"), "metavar": field.metadata.get("metavar"), "action": "append",
                "help": text + " (repeat the option for each element)"}
    if field.metadata.get("parse") is not None:
        shown = "" if default is None else f" (default: {default})"
        return {"type": field.metadata["parse"], "metavar": field.metadata.get("metavar"), "help": text + shown}
    kind = _unwrap_optional(hint)
    listed = kind is tuple or typing.get_origin(kind) is tuple
    if listed and choices:
        text += f"; any of {','.join(map(str, choices))}"
    if default is not None and not isinstance(default, bool):
        shown = ",".join(map(str, default)) if listed else default
        text += f" (default: {shown if shown != '' else repr('')})"
    if kind is bool:
        if default is not False:
            raise TypeError(f"switch {field.name!r} must default to False")
        return {"action": "store_true", "help": text}
    if listed:
        element = (typing.get_args(kind) or (str,))[0]
        return {"type": _list_of(element, choices), "metavar": "A,B,...", "help": text}
    if kind in (int, float):
        return {"type": _finite(kind, choices), "help": text}
    if kind is str:
        return {"type": str, "choices": choices, "help": text}
    raise TypeError(f"unsupported option type {hint} for field {field.name!r}")


def add_options(parser: argparse.ArgumentParser, config) -> None:
    """One ``--field-name`` option per field of the dataclass ``config``; dest = field name."""
    hints = typing.get_type_hints(config)
    for field in dataclasses.fields(config):
        if field.metadata.get("positional"):
            if hints[field.name] is not str:
                raise TypeError(f"positional option {field.name!r} must be a str")
            parser.add_argument(field.name, metavar=field.metadata["metavar"], help=field.metadata["help"])
            continue
        default = None if field.metadata.get("repeat") else field.default  # append must not extend the default
        parser.add_argument(flag_of(field), dest=field.name, default=default, **_argument(field, hints[field.name]))


def config_from_args(config, args: argparse.Namespace):
    """The frozen ``config`` built from the parsed options (its __post_init__ checks the ranges), its output
    locations checked (``check_paths``)."""
    def value(f: dataclasses.Field):
        given = getattr(args, f.name)
        if f.metadata.get("repeat"):
            return f.default if given is None else tuple(given)
        return given

    built = config(**{f.name: value(f) for f in dataclasses.fields(config)})
    check_paths(built)
    return built


def check_paths(config) -> None:
    """Every output location of ``config`` (fields declared with ``path=``) writable or creatable, before any work:
    ParameterError naming the field otherwise (theory.ground.paths). An optional path left unset is not checked."""
    for f in dataclasses.fields(config):
        kind, value = f.metadata.get("path"), getattr(config, f.name)
        if kind is not None and value is not None:
            (paths.writable_file if kind == "file" else paths.writable_folder)(f.name, value)


def given_flags(argv: list[str]) -> list[str]:
    """The options (``--name``) that ``argv`` gives, in order, each as often as it is given."""
    return [token.split("=", 1)[0] for token in argv if token.startswith("--") and token != "--"]


def refuse_ignored(config, given: set[str]) -> None:
    """UsageError if an option in ``given`` means nothing in the mode ``config`` is in (declared with
    ``only_with``/``not_with``): accepted, it would be ignored without a word."""
    by_name = {f.name: f for f in dataclasses.fields(config)}
    if isinstance(config, Threads) and "--threads" in given and not config.uses_torch():
        raise UsageError("argument --threads: nothing in this run uses torch (the closed forms are numpy), so "
                         "nothing reads this option")
    for f in dataclasses.fields(config):
        if flag_of(f) not in given:
            continue
        needed, excluded = f.metadata.get("only_with"), f.metadata.get("not_with")
        if needed is not None and not getattr(config, needed):
            raise UsageError(f"argument {flag_of(f)}: only with {flag_of(by_name[needed])} (without it nothing "
                             "reads this option)")
        if excluded is not None and getattr(config, excluded):
            raise UsageError(f"argument {flag_of(f)}: not with {flag_of(by_name[excluded])} (with it nothing "
                             "reads this option)")


@dataclasses.dataclass(frozen=True)
class Threads:
    """Base of the configs whose run uses torch on the CPU: how many threads it may take
    (paper_repro.py calls torch.set_num_threads with it before the run)."""

    threads: int = option(1, "torch CPU threads: these small problems gain little from more, and "
                             "oversubscribed threads slow them badly on a busy machine")

    def __post_init__(self):
        require_int("threads", self.threads, 1, 2**31 - 1)

    def uses_torch(self) -> bool:
        """Whether this run uses torch (paper_repro.py imports it only then); a mode that does not overrides it, and
        --threads given in it is refused (``refuse_ignored``)."""
        return True


@dataclasses.dataclass(frozen=True)
class Output:
    """How a report is printed."""

    json: bool = option(False, "print one JSON object instead of the text report")


def parse_support(text: str) -> int | float:
    """A support-size option (--support): a positive integer, or 'inf' for the K → ∞ limit (math.inf)."""
    if text.strip().lower() in ("inf", "infinity", "∞"):
        return math.inf
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer or 'inf'") from None
