#!/usr/bin/env python
"""Regenerate the paper's figures and check its mathematics: the toolkit's command line.

  python paper_repro.py                 every figure, quick profile (same as `figures`)
  python paper_repro.py figures ...     the figures (--full, --only 1,4, --seed, --out, --replot)
  python paper_repro.py compare RUN_DIR does a run's output reproduce the committed figures (and by how much)
  python paper_repro.py verify          every closed form against its simulation twin
  python paper_repro.py explore ...     the failure mode for one setting, theory next to simulation
  python paper_repro.py bench           batched functional MAML against a per-task loop
  python paper_repro.py formulas        every derived formula as LaTeX
  python paper_repro.py vision ...      few-shot image classification (MAML/ANIL ± LinNet ± KFO)
  python paper_repro.py finite-tasks    MAML on a finite task set: the best training step is negative
  python paper_repro.py fixed-points ... MAML, FO-MAML, Reptile and ERM fixed points (--group …)
  python paper_repro.py dynamics ...   how meta-training gets there: exact gradient-flow curves (--model …)
  python paper_repro.py in-context ... in-context learning by linear attention: one meta-learned step
  python paper_repro.py app ...         the explorer: sliders in the browser (--port, --no-browser, --export)

Options go after the subcommand; options with no subcommand are the figures' (`--full --only 1,4`).
Each subcommand's options are the fields of its config dataclass (theory.ground.options), and its
module provides run(config, progress) and format_report(report). Bad input exits with status 2 and
a one-line error naming the option.
"""
from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import re
import sys
from dataclasses import fields
from typing import NamedTuple

os.environ.setdefault("MPLBACKEND", "Agg")

from theory.ground.errors import DatasetError, DivergenceError, ParameterError, UsageError
from theory.ground.options import (
    Output,
    add_options,
    config_from_args,
    flag_of,
    flags,
    given_flags,
    refuse_ignored,
    takes_value,
)


class Command(NamedTuple):
    module: str  # provides run(config, progress), format_report(report), optionally exit_status(report) and
    # json_report(report) (what --json prints, when it is not the whole report)
    config: str  # the config dataclass in ``module``: one option per field
    help: str
    prints_json: bool = False  # takes --json (theory.ground.options.Output)


COMMANDS = {
    "figures": Command("figures.registry", "FiguresConfig", "make the paper's figures (the default)"),
    "compare": Command("figures.compare", "CompareConfig",
                       "does a run reproduce the committed figures? column by column, under each figure's rules",
                       prints_json=True),
    "verify": Command("simulations.experiments.verify", "VerifyConfig",
                      "hold every theory result against simulation", prints_json=True),
    "explore": Command("simulations.experiments.explore", "ExploreConfig", "the failure mode for one setting",
                       prints_json=True),
    "bench": Command("simulations.experiments.benchmark", "BenchConfig",
                     "batched functional MAML vs a per-task loop", prints_json=True),
    "formulas": Command("simulations.experiments.formulas", "FormulasConfig",
                        "print every derived formula as LaTeX (Markdown)"),
    "vision": Command("simulations.experiments.vision", "VisionConfig",
                      "few-shot image classification: MAML or ANIL on a conv net", prints_json=True),
    "finite-tasks": Command("simulations.experiments.finite_tasks", "FiniteTasksConfig",
                            "MAML on a finite task set: test loss against the training step α_t", prints_json=True),
    "fixed-points": Command("simulations.experiments.fixed_points", "FixedPointsConfig",
                            "fixed points of MAML, FO-MAML, Reptile and ERM on tasks of different hardness",
                            prints_json=True),
    "dynamics": Command("simulations.experiments.dynamics", "DynamicsConfig",
                        "how meta-training gets there: the exact gradient-flow curve of shallow MAML, ANIL, depth 2",
                        prints_json=True),
    "in-context": Command("simulations.experiments.in_context", "InContextConfig",
                          "in-context learning by linear attention: Γ* and the exact test loss at any context length",
                          prints_json=True),
    "app": Command("figures.app", "AppConfig", "the explorer: the failure mode under sliders, in the browser"),
}


_NUMBER = r"(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?"  # an unsigned decimal number


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump) and exit with status 2, which takes no abbreviation of an
    option (``--di 3`` is not ``--dim 3``: a future option could change what an old command means), and which reads
    a value starting with a minus sign as a value when it is a number or a comma-separated list of numbers
    (``--train-alpha -0.6,0,0.6``; argparse's own test takes only a single plain negative number)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)
        self._negative_number_matcher = re.compile(rf"^-{_NUMBER}(,\s*-?{_NUMBER})*$")

    def error(self, message: str):
        raise UsageError(message)


def _top_parser() -> Parser:
    parser = Parser(prog="paper_repro.py", description=__doc__.split("\n")[0],
                    epilog="Options with no subcommand are the figures': paper_repro.py --full --only 1,4")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, command in COMMANDS.items():
        sub.add_parser(name, help=command.help, add_help=False)
    return parser


def config_classes(command: str) -> list[type]:
    spec = COMMANDS[command]
    return [getattr(importlib.import_module(spec.module), spec.config), *([Output] if spec.prints_json else [])]


def _split(argv: list[str]) -> tuple[str, list[str]]:
    """(subcommand, its arguments): options given before a subcommand's name are an error, not ignored."""
    if argv and argv[0] in COMMANDS:
        return argv[0], argv[1:]
    if not argv or (argv[0] not in ("-h", "--help") and argv[0].startswith("-")):
        with_value = takes_value(*config_classes("figures"))  # so `--out verify` is a folder named verify
        i = 0
        while i < len(argv):
            if argv[i] in COMMANDS:
                _misplaced(argv[i], argv[:i])
            i += 2 if argv[i] in with_value else 1
        return "figures", argv
    _top_parser().parse_args(argv)  # help (exit 0) or an unknown subcommand (UsageError)
    raise AssertionError("unreachable")


def _misplaced(command: str, before: list[str]) -> None:
    """UsageError for options given before ``command``: move them after it, or, where ``command`` has no such
    option, say so (``--only=3 verify`` is not ``verify --only=3``, which verify does not take)."""
    given = [a.split("=", 1)[0] for a in before if a.startswith("-")]
    own = set(flags(*config_classes(command)).values())
    foreign = [option for option in given if option not in own]
    if foreign:
        figures = flags(*config_classes("figures")).values()
        whose = "an option of the figures, not" if foreign[0] in figures else "not an option"
        raise UsageError(f"argument {foreign[0]}: {whose} of {command} (options go after the subcommand; "
                         f"paper_repro.py {command} --help lists its options)")
    raise UsageError(f"argument {given[0]}: options go after the subcommand: "
                     f"paper_repro.py {command} {' '.join(before)}")


def option_error(err: ParameterError, *configs) -> UsageError:
    """The library's parameter name -> the option that set it (the configs' field names are those names)."""
    flag = flags(*configs).get(err.parameter, err.parameter)
    return UsageError(f"argument {flag}: {err.value!r} is out of range: {err.valid}")


def build_configs(classes: list[type], argv: list[str], prog: str, description: str) -> list:
    """One config per class in ``classes``, from ``argv`` (every field an option); UsageError on bad input. The
    command line's parsing and error mapping, also for scripts/ (one line naming the option, exit status 2)."""
    parser = Parser(prog=prog, description=description)
    for config in classes:
        add_options(parser, config)
    _refuse_repeats(argv, classes)
    args = parser.parse_args(argv)
    try:
        built = [config_from_args(config, args) for config in classes]
    except ParameterError as err:
        raise option_error(err, *classes) from None
    for config in built:
        refuse_ignored(config, set(given_flags(argv)))
    return built


def _refuse_repeats(argv: list[str], classes: list[type]) -> None:
    """An option given twice is an error (argparse would keep the last value silently), unless it is one of the
    options given once per element (``--group``)."""
    repeatable = {flag_of(f) for config in classes for f in fields(config) if f.metadata.get("repeat")}
    options = given_flags(argv)
    for option in options:
        if options.count(option) > 1 and option not in repeatable:
            raise UsageError(f"argument {option}: given more than once (give each option once)")


def parse(argv: list[str]) -> tuple[str, object, Output]:
    """(subcommand, its config, how to print) from the command line; UsageError on bad input."""
    command, rest = _split(list(argv))
    built = build_configs(config_classes(command), rest, f"paper_repro.py {command}", COMMANDS[command].help)
    return command, built[0], built[1] if len(built) > 1 else Output()


def strict_json(value):
    """``value`` with every non-finite float replaced: ±inf -> "inf"/"-inf", NaN -> None (strict JSON: jq and
    JavaScript's JSON.parse reject Infinity and NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        command, config, output = parse(argv)
        module = importlib.import_module(COMMANDS[command].module)
        if "threads" in {f.name for f in fields(config)} and getattr(config, "uses_torch", lambda: True)():
            import torch

            torch.set_num_threads(config.threads)
        try:
            report = module.run(config, progress=not output.json)
        except ParameterError as err:
            raise option_error(err, *config_classes(command)) from None
        if report is None:  # nothing to print: a torchrun process other than rank 0 (vision)
            return 0
        if output.json:
            text = json.dumps(strict_json(module.json_report(report) if hasattr(module, "json_report") else report),
                              indent=2, allow_nan=False)
        else:
            text = module.format_report(report)
        if text:
            print(text)
        return module.exit_status(report) if hasattr(module, "exit_status") else 0
    except (UsageError, DatasetError, DivergenceError) as err:
        print(f"paper_repro.py: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paper_repro.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
