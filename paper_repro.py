#!/usr/bin/env python
"""Regenerate the paper's figures and check its mathematics: the toolkit's command line.

  python paper_repro.py                 every figure, quick profile (--full, --only 1,4, --seed, --out)
  python paper_repro.py verify          every closed form against its simulation twin
  python paper_repro.py explore ...     the failure mode for one setting, theory next to simulation
  python paper_repro.py bench           batched functional MAML against a per-task loop
  python paper_repro.py formulas        every derived formula as LaTeX
  python paper_repro.py vision ...      few-shot image classification (MAML/ANIL ± LinNet ± KFO)

Bad input exits with status 2 and a one-line error naming the option and its valid range.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys

os.environ.setdefault("MPLBACKEND", "Agg")

from theory.errors import UsageError

PARAMETER_FLAGS = {  # library parameter name -> command-line option
    "dim": "--dim", "support": "--support", "query": "--query", "rank": "--rank", "noise": "--noise",
    "noise_var": "--noise", "alpha": "--alpha", "steps": "--steps", "depth": "--depth", "width": "--width",
    "iterations": "--iterations", "meta_batch": "--meta-batch", "meta_lr": "--meta-lr",
    "linnet_layers": "--linnet-layers", "eval_tasks": "--eval-tasks", "seed": "--seed", "threads": "--threads",
    "task": "--task", "models": "--models", "kfo_form": "--kfo-form",
    "dataset": "--dataset", "data_root": "--data-root", "ways": "--ways", "shots": "--shots",
    "method": "--method", "linnet": "--linnet", "kfo": "--kfo", "inner_steps": "--inner-steps",
    "fast_lr": "--fast-lr", "device": "--device", "checkpoint": "--checkpoint",
    "checkpoint_every_seconds": "--checkpoint-every", "validation_tasks": "--validation-tasks",
    "validate_every": "--validate-every", "first_order": "--first-order",
}


class Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage dump) and exit with status 2."""

    def error(self, message: str):
        raise UsageError(message)


def _finite(kind):
    def convert(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
        return value

    convert.__name__ = kind.__name__
    return convert


INT, FLOAT = _finite(int), _finite(float)
MIN_VERIFY_SCALE = 0.3


def build_parser() -> Parser:
    parser = Parser(prog="paper_repro.py", description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="paper-grade seeds and iterations (slow)")
    parser.add_argument("--only", default=None, help="comma-separated figure numbers, e.g. 1,4")
    parser.add_argument("--seed", type=INT, default=0, help="base seed (same seed, same CSVs)")
    parser.add_argument("--out", default="figures/generated", help="output folder for figures and data")
    parser.add_argument("--replot", action="store_true", help="re-plot from cached CSV/JSON results")
    parser.add_argument("--data-root", default=None, metavar="DIR",
                        help="folder with Omniglot/CIFAR-FS/mini-ImageNet for the vision figure (digits needs none)")
    parser.add_argument("--threads", type=INT, default=1,
                        help="torch CPU threads (default 1: these small problems gain little from more, and "
                             "oversubscribed threads slow them badly when the machine is busy; bench sets its own)")
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    verify = sub.add_parser("verify", help="hold every theory result against simulation")
    verify.add_argument("--json", default=None, metavar="PATH", help="also write the table as JSON")
    verify.add_argument("--scale", type=FLOAT, default=1.0,
                        help=f"multiply sample sizes and iterations (default 1, at least {MIN_VERIFY_SCALE}: "
                             "below that heavy-tailed estimates lose their interval's coverage)")

    explore = sub.add_parser("explore", help="the failure mode for one setting")
    for flag, kind, default, text in [
        ("--dim", INT, 50, "input dimension d"), ("--support", INT, 5, "support points K"),
        ("--query", INT, 20, "query points Q"), ("--rank", INT, 2, "task-subspace rank r"),
        ("--noise", FLOAT, 0.0, "label-noise variance s²"), ("--alpha", FLOAT, None, "inner step (default α*)"),
        ("--steps", INT, 1, "inner steps k"), ("--depth", INT, 3, "deep model depth L"),
        ("--width", INT, 64, "deep model width"), ("--linnet-layers", INT, 2, "layers LinNet adds"),
        ("--iterations", INT, 2000, "meta-training iterations"), ("--meta-batch", INT, 32, "tasks per step"),
        ("--meta-lr", FLOAT, 0.01, "Adam learning rate"), ("--eval-tasks", INT, 2000, "evaluation tasks"),
        ("--seed", INT, 0, "seed"),
    ]:
        explore.add_argument(flag, type=kind, default=default, help=text)
    explore.add_argument("--task", default="regression", help="regression or classification")
    explore.add_argument("--models", default="shallow,deep,linnet,kfo",
                         help="comma-separated: shallow, deep, linnet, kfo, deep-kfo, linnet-kfo")
    explore.add_argument("--kfo-form", default="linear", help="KFO form: linear, psd or nonlinear")
    explore.add_argument("--theory-only", action="store_true", help="closed forms only, no training")
    explore.add_argument("--json", action="store_true", help="print one JSON object")

    formulas = sub.add_parser("formulas", help="print every derived formula as LaTeX (Markdown)")
    formulas.add_argument("--out", default=None, metavar="PATH", help="write to a file instead")

    bench = sub.add_parser("bench", help="batched functional MAML vs a per-task loop")
    bench.add_argument("--iterations", type=INT, default=20, help="timed meta-steps per path")
    bench.add_argument("--threads", type=INT, default=2, help="torch CPU threads")
    bench.add_argument("--meta-batch", type=INT, default=32, help="tasks per meta-step")
    bench.add_argument("--vision", action="store_true",
                       help="also benchmark the few-shot conv net (MAML, MAML+KFO, ANIL; batched vs loop)")
    bench.add_argument("--kfo-forms", default="linear",
                       help="KFO forms whose meta-step cost to compare with plain MAML ('' for none)")
    _add_vision(sub)
    return parser


def _add_vision(sub) -> None:
    """The ``vision`` subcommand; unset options take simulations.experiments.vision.VisionConfig's defaults."""
    vision = sub.add_parser("vision", help="few-shot image classification: MAML or ANIL on a conv net")
    for flag, kind, text in [
        ("--dataset", str, "omniglot, cifarfs, mini-imagenet or digits (default digits, needs no files)"),
        ("--data-root", str, "folder holding the dataset files"), ("--ways", INT, "N classes per episode"),
        ("--shots", INT, "K support images per class"), ("--query", INT, "query images per class (15)"),
        ("--method", str, "maml (adapt everything) or anil (adapt the head)"),
        ("--linnet", INT, "identity-initialised layers before the head"),
        ("--depth", INT, "conv blocks (4; 2 is the shallow failure case)"),
        ("--width", INT, "channels per block (64 Omniglot, 32 otherwise)"),
        ("--inner-steps", INT, "inner steps k"), ("--fast-lr", FLOAT, "inner step size α"),
        ("--meta-lr", FLOAT, "Adam step size"), ("--meta-batch", INT, "episodes per meta-step"),
        ("--iterations", INT, "meta-steps"), ("--device", str, "cpu, cuda or cuda:N"),
        ("--eval-tasks", INT, "test episodes (600)"), ("--validation-tasks", INT, "episodes per check"),
        ("--validate-every", INT, "meta-steps between validation checks"),
        ("--checkpoint", str, "checkpoint file: resumed from if it exists, written while training"),
        ("--checkpoint-every", FLOAT, "seconds between checkpoints (120)"),
    ]:
        dest = {"--checkpoint-every": "checkpoint_every_seconds",  # the top-level --data-root counts too
                "--data-root": "vision_data_root"}.get(flag, flag[2:].replace("-", "_"))
        vision.add_argument(flag, type=kind, default=None, help=text, dest=dest)
    vision.add_argument("--seed", type=INT, default=0, help="seed of initialisation and episodes")
    vision.add_argument("--kfo", action="store_true", help="Kronecker-factored meta-optimizer")
    vision.add_argument("--first-order", action="store_true", help="first-order MAML")
    vision.add_argument("--json", action="store_true", help="print one JSON object")


# -- verify -----------------------------------------------------------------------------------------
def run_verify(args) -> int:
    from simulations.atomic_io import atomic_write_json
    from simulations.checks import format_checks, run_checks

    if args.scale < MIN_VERIFY_SCALE:
        raise UsageError(f"argument --scale: {args.scale} is out of range: must be >= {MIN_VERIFY_SCALE}")
    checks = run_checks(args.scale, progress=True)
    print(format_checks(checks))
    failed = [c.name for c in checks if not c.passed]
    if args.json:
        atomic_write_json(args.json, [c.as_dict() for c in checks])
    return 1 if failed else 0


# -- explore ----------------------------------------------------------------------------------------
def run_explore(args) -> int:
    from simulations.experiments.explore import ExploreConfig, explore
    from theory.errors import DivergenceError

    config = ExploreConfig(dim=args.dim, support=args.support, query=args.query, rank=args.rank,
                           noise=args.noise, alpha=args.alpha, steps=args.steps, depth=args.depth,
                           width=args.width, linnet_layers=args.linnet_layers, iterations=args.iterations,
                           meta_batch=args.meta_batch, meta_lr=args.meta_lr, eval_tasks=args.eval_tasks,
                           seed=args.seed, task=args.task, models=tuple(args.models.split(",")),
                           kfo_form=args.kfo_form)
    try:
        report = explore(config, theory_only=args.theory_only, progress=not args.json)
    except DivergenceError as err:
        from theory.shallow_maml import optimal_step_size

        limit = 2 * optimal_step_size(config.family())
        alpha = config.alpha if config.alpha is not None else limit / 2
        raise UsageError(f"argument --alpha: {alpha:g} makes meta-training diverge ({err}); use a step in "
                         f"(0, {limit:.4g}), where one shallow step lowers the loss, or a smaller --meta-lr"
                         ) from None
    if args.json:
        print(json.dumps({"theory": report["theory"], "simulation": report.get("simulation", {}),
                          "config": report["config"]}, indent=2))
    else:
        print(format_explore(report))
    return 0


def format_explore(report: dict) -> str:
    t, c = report["theory"], report["config"]

    def num(x):
        return "n/a (only simulation answers)" if x is None else f"{x:.4f}"

    lines = [f"Setting: {c['task']}, d={c['dim']}, K={c['support']}, Q={c['query']}, r={c['rank']}, "
             f"s²={c['noise']}, α={t['alpha']:.4g}, k={c['steps']}"]
    if c["task"] == "classification":
        lines.append("Theory: no closed form for the logistic loss (the regression theory explains the mechanism)")
    else:
        lines += _theory_lines(t, num)
    if "simulation" in report:
        lines += _simulation_lines(report["simulation"], c)
    return "\n".join(lines)


def _theory_lines(t: dict, num) -> list[str]:
    lines = ["Theory (at the MAML-optimal initialisation θ* = μ):",
             f"  pre-adaptation loss                  {num(t['pre_adaptation_loss'])}",
             f"  shallow post-adaptation loss at α    {num(t['shallow_post_loss'])}",
             f"  shallow optimal α*                   {num(t['shallow_optimal_alpha'])}",
             f"  shallow best post-adaptation loss    {num(t['shallow_best_post_loss'])}",
             f"  optimal preconditioner, best loss    {num(t['preconditioned_best_post_loss'])}"]
    if t["shallow_post_loss"] is not None and t["shallow_post_loss"] > t["pre_adaptation_loss"]:
        lines.append("  note: at this α the shallow inner loop raises the expected loss above its pre-adaptation value")
    return lines


def _simulation_lines(simulation: dict, c: dict) -> list[str]:
    metrics = ["pre_loss", "post_loss"] + (["post_accuracy"] if c["task"] == "classification" else [])
    heads = {"pre_loss": "pre-adaptation loss", "post_loss": "post-adaptation loss",
             "post_accuracy": "post-adaptation accuracy"}
    lines = [f"Simulation (meta-trained {c['iterations']} iterations; mean ± 95% CI on {c['eval_tasks']} fresh tasks):",
             f"  {'model':10s}" + "".join(f"  {heads[m]:>24s}" for m in metrics)]
    for name, r in simulation.items():
        lines.append(f"  {name:10s}" + "".join(f"  {r[m]:13.4f} ± {r[m + '_ci95']:.4f}" for m in metrics))
    return lines


# -- formulas ---------------------------------------------------------------------------------------
def run_formulas(args) -> int:
    from simulations.atomic_io import atomic_write_text
    from theory.latex import markdown

    text = markdown()
    if args.out:
        atomic_write_text(args.out, text)
    else:
        print(text, end="")
    return 0


# -- bench ------------------------------------------------------------------------------------------
def run_bench(args) -> int:
    from simulations.experiments.benchmark import benchmark_kfo_cost, benchmark_meta_training, format_benchmark, format_kfo_cost

    result = benchmark_meta_training(iterations=args.iterations, threads=args.threads,
                                     meta_batch=args.meta_batch)
    print(format_benchmark(result))
    if args.kfo_forms:
        for form in args.kfo_forms.split(","):
            if form not in ("linear", "psd", "nonlinear"):
                raise UsageError(f"argument --kfo-forms: {form!r} is not one of linear, psd, nonlinear")
            print()
            print(format_kfo_cost(benchmark_kfo_cost(iterations=args.iterations, threads=args.threads,
                                                     meta_batch=args.meta_batch, form=form)))
    if args.vision:
        from simulations.experiments.vision_benchmark import benchmark_vision, format_vision_benchmark

        print()
        print(format_vision_benchmark(benchmark_vision(threads=args.threads, meta_batch=args.meta_batch,
                                                       iterations=max(3, args.iterations // 2))))
    return 0


# -- vision -----------------------------------------------------------------------------------------
def run_vision(args) -> int:
    import dataclasses

    from simulations.experiments.vision import VisionConfig, format_report
    from simulations.experiments.vision import run_vision as run
    from theory.errors import DatasetError, DivergenceError

    fields = {f.name for f in dataclasses.fields(VisionConfig)}
    given = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    config = VisionConfig(**{**given, "data_root": args.vision_data_root or args.data_root})
    try:
        report = run(config, progress=not args.json)
    except DatasetError as err:
        raise UsageError(str(err)) from None
    except DivergenceError as err:
        raise UsageError(f"argument --fast-lr: {config.fast_lr:g} with --meta-lr {config.meta_lr:g} makes "
                         f"meta-training diverge ({err}); use smaller steps") from None
    print(json.dumps(report) if args.json else format_report(report))
    return 0


# -- figures (the main job) -------------------------------------------------------------------------
def run_figures(args) -> int:
    from figures.registry import FIGURES, run_figure

    selected = sorted(FIGURES)
    if args.only:
        try:
            selected = [int(part) for part in args.only.split(",") if part.strip()]
        except ValueError:
            raise UsageError(f"argument --only: {args.only!r} is not a comma-separated list of figure numbers "
                             f"(valid: {','.join(map(str, sorted(FIGURES)))})") from None
        unknown = [n for n in selected if n not in FIGURES]
        if unknown or not selected:
            raise UsageError(f"argument --only: unknown figure {unknown or args.only!r} "
                             f"(valid: {','.join(map(str, sorted(FIGURES)))})")
    for number in selected:
        try:
            paths = run_figure(number, out=args.out, full=args.full, seed=args.seed, replot=args.replot,
                               data_root=args.data_root)
        except FileNotFoundError as err:
            raise UsageError(f"argument --replot: {err}") from None
        print(f"figure {number}: " + ", ".join(str(p) for p in paths))
    return 0


def _check_common(args) -> None:
    import torch

    for flag, value in (("--seed", args.seed), ("--threads", args.threads)):
        low = 0 if flag == "--seed" else 1
        if not low <= value <= 2**31 - 1:
            raise UsageError(f"argument {flag}: {value} is out of range: an integer >= {low} and < 2^31")
    if args.command != "bench":
        torch.set_num_threads(args.threads)


def main(argv=None) -> int:
    from theory.errors import ParameterError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        _check_common(args)
        handler = {"verify": run_verify, "explore": run_explore, "bench": run_bench,
                   "formulas": run_formulas, "vision": run_vision}.get(args.command, run_figures)
        return handler(args)
    except UsageError as err:
        print(f"paper_repro.py: error: {err}", file=sys.stderr)
        return 2
    except ParameterError as err:
        flag = PARAMETER_FLAGS.get(err.parameter, err.parameter)
        print(f"paper_repro.py: error: argument {flag}: {err.value!r} is out of range: {err.valid}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("paper_repro.py: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
