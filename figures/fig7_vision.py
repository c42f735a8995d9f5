"""Figure 7, few-shot vision: MAML and ANIL × {plain, LinNet, KFO} × {shallow 2-block, deep 4-block}
conv nets, novel-class test accuracy with 95% intervals over test episodes, for each available dataset:
every dataset's test classes are absent from meta-training.

digits (scikit-learn's 8×8 handwritten digits, bundled; classes are (digit, rotation) pairs, digits
0–5 meta-train, 8–9 meta-test) always runs; Omniglot, CIFAR-FS and
mini-ImageNet run when ``data_root`` holds them (``paper_repro.py --data-root DIR``), and are
listed as unavailable (with the loader's reason) otherwise. The quick profile is digits only,
small enough for the main job's budget (each run is short: the accuracies are far from the
literature's, but the comparison is like for like); ``--full`` uses literature-scale iterations
(60,000 meta-steps: a GPU job).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.checkpoint import run_units
from figures.common import Profiles
from simulations.experiments.vision import VisionConfig, run_vision
from simulations.vision.datasets import load_pool
from theory.errors import DatasetError, DivergenceError

METHODS = ("maml", "anil")
REMEDIES = {"plain": {}, "LinNet": {"linnet_layers": 2}, "KFO": {"kfo": True}}
DEPTHS = {"2-block": 2, "4-block": 4}
COLORS = {"plain": "#7f7f7f", "LinNet": "#1f77b4", "KFO": "#2ca02c"}


@dataclass(frozen=True)
class Config(Profiles):
    datasets: tuple = ("digits", "omniglot", "cifarfs", "mini-imagenet")  # those present are run
    data_root: str | None = None  # where Omniglot, CIFAR-FS and mini-ImageNet live (digits needs none)
    ways: int = 5
    shots: int = 1
    iterations: int = 40  # meta-steps per run (literature: 60,000; the quick profile shows the trend, not the end)
    meta_batch: int = 16
    eval_tasks: int = 200  # test episodes per run (literature: 600)
    width: int | None = 16  # conv channels (None: 64 for Omniglot, 32 otherwise)
    alpha: float = 0.5
    meta_lr: float = 0.003
    device: str = "cpu"

    FULL: ClassVar[dict] = {"iterations": 60_000, "meta_batch": 32, "eval_tasks": 600, "width": None}


def available(config: Config) -> dict[str, str | None]:
    """dataset -> None if it loads, else the loader's one-line reason."""
    out = {}
    for name in config.datasets:
        try:
            load_pool(name, "test", config.data_root)
            out[name] = None
        except DatasetError as err:
            out[name] = str(err)
    return out


def _run(config: Config, dataset: str, method: str, remedy: str, depth: int, seed: int) -> dict:
    vision = VisionConfig(dataset=dataset, data_root=config.data_root, ways=config.ways, shots=config.shots,
                          method=method, depth=depth, width=config.width, iterations=config.iterations,
                          meta_batch=config.meta_batch, eval_tasks=config.eval_tasks, alpha=config.alpha,
                          meta_lr=config.meta_lr, device=config.device, seed=seed, validation_tasks=0)
    try:
        report = run_vision(replace(vision, **REMEDIES[remedy]), progress=False)
    except (DivergenceError, FloatingPointError) as err:
        return {"diverged": str(err)}
    return {key: report[key] for key in ("test_accuracy", "ci95", "test_tasks", "train_seconds", "classes")}


def _runs(config: Config, status: dict[str, str | None]):
    """(unit key, dataset, method, depth name, remedy) of every run on a present dataset, in the figure's order."""
    for dataset in (d for d, reason in status.items() if reason is None):
        for method in METHODS:
            for depth_name in DEPTHS:
                for remedy in REMEDIES:
                    yield f"{dataset}/{method}/{depth_name}/{remedy}", dataset, method, depth_name, remedy


def units(config: Config, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """One run per present dataset × method × depth × remedy: key -> a picklable zero-argument callable."""
    return {key: partial(_run, config, dataset, method, remedy, DEPTHS[depth], seed)
            for key, dataset, method, depth, remedy in _runs(config, available(config))}


def assemble(config: Config, seed: int, done: dict[str, dict]) -> dict:
    status = available(config)
    runs = [{"dataset": dataset, "method": method, "depth": depth, "remedy": remedy, **done[key]}
            for key, dataset, method, depth, remedy in _runs(config, status)]
    return {"runs": runs, "unavailable": {d: r for d, r in status.items() if r is not None},
            "ways": config.ways, "shots": config.shots, "iterations": config.iterations}


def compute(config: Config, seed: int = 0, progress=None) -> dict:
    return assemble(config, seed, run_units(progress, units(config, seed)))


def n_units(config: Config) -> int:
    """Progress units: one run per present dataset × method × depth × remedy (absent datasets run nothing)."""
    present = sum(reason is None for reason in available(config).values())
    return present * len(METHODS) * len(DEPTHS) * len(REMEDIES)


def rows(results: dict) -> list[dict]:
    # no timings in the CSV: the same seed gives the same bytes
    keys = ("dataset", "method", "depth", "remedy", "test_accuracy", "ci95", "test_tasks")
    out = [{k: r.get(k, "") for k in keys} | {"diverged": r.get("diverged", "")} for r in results["runs"]]
    out += [{"dataset": d, "method": "", "depth": "", "remedy": "", "test_accuracy": "", "ci95": "",
             "test_tasks": "", "diverged": f"unavailable: {reason}"}
            for d, reason in results["unavailable"].items()]
    return out


def plot(results: dict):
    datasets = sorted({r["dataset"] for r in results["runs"]}) or ["(none)"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.2), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        groups = [(m, d) for m in METHODS for d in DEPTHS]
        width = 0.26
        for j, remedy in enumerate(REMEDIES):
            acc, err = [], []
            for method, depth in groups:
                match = [r for r in results["runs"] if (r["dataset"], r["method"], r["depth"], r["remedy"])
                         == (dataset, method, depth, remedy) and "test_accuracy" in r]
                acc.append(match[0]["test_accuracy"] if match else np.nan)
                err.append(match[0]["ci95"] if match else 0.0)
            ax.bar(np.arange(len(groups)) + (j - 1) * width, acc, width, yerr=err, capsize=3,
                   color=COLORS[remedy], label=remedy)
        ax.axhline(1 / results["ways"], color="black", lw=1, linestyle=":", label="chance")
        ax.set_xticks(range(len(groups)), [f"{m.upper()}\n{d}" for m, d in groups])
        ax.set(ylim=(0, 1), ylabel="novel-class test accuracy (95% CI over test episodes)",
               title=f"{dataset}: {results['ways']}-way {results['shots']}-shot, {results['iterations']} meta-steps"
                     + _split_text(results, dataset))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="lower right")
    if results["unavailable"]:
        fig.text(0.01, -0.02, "not run (data not found): " + ", ".join(results["unavailable"]), fontsize=7)
    fig.tight_layout()
    return fig


def _split_text(results: dict, dataset: str) -> str:
    """'\nclasses: 24 train / 8 validation / 8 test (disjoint)' from a run's report, '' if none ran."""
    counts = next((r["classes"] for r in results["runs"] if r["dataset"] == dataset and "classes" in r), None)
    if counts is None:
        return ""
    return "\nclasses: " + " / ".join(f"{n} {split}" for split, n in counts.items()) + " (disjoint)"


def caption(results: dict) -> str:
    parts = []
    for r in results["runs"]:
        if "test_accuracy" in r:
            parts.append(f"{r['method'].upper()} {r['depth']} {r['remedy']} {r['test_accuracy']:.1%}")
    skipped = f" Not run (no data): {', '.join(results['unavailable'])}." if results["unavailable"] else ""
    return (f"{results['ways']}-way {results['shots']}-shot novel-class test accuracy (test classes unseen in "
            f"meta-training) after {results['iterations']} meta-steps (95% intervals over test episodes in the "
            f"CSV): " + "; ".join(parts) + "." + skipped)
