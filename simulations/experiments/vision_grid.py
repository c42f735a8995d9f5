"""Figure 7's numbers, few-shot vision: MAML and ANIL × {plain, LinNet, KFO} × {2-block, 4-block} conv nets on
every available dataset, each setting meta-trained from several training seeds (simulations.experiments.vision).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial

from simulations.experiments.vision import VisionConfig, run_vision
from simulations.statistics import mean_ci95
from simulations.vision.datasets import load_pool
from theory.ground.errors import DatasetError, DivergenceError

# The vision run grid, declared once: figure 7 and scripts/paper_runs.py, from which scripts/paper_runs.mk takes
# its run names and each run's options.
METHODS = ("maml", "anil")
REMEDIES = {"plain": {}, "LinNet": {"linnet_layers": 2}, "KFO": {"kfo": True}}  # name -> VisionConfig fields
DEPTHS = {"2-block": 2, "4-block": 4}
PAPER_DATASETS = ("omniglot", "cifarfs", "mini-imagenet")
SHOTS = {"omniglot": 1, "cifarfs": 5, "mini-imagenet": 5, "digits": 1}  # the literature's; digits: quick checks


@dataclass(frozen=True)
class Settings:
    """Figure 7's setting: the datasets, the episode shape, meta-training and the training seeds."""

    datasets: tuple = ("digits", "omniglot", "cifarfs", "mini-imagenet")  # those present are run
    data_root: str | None = None  # where Omniglot, CIFAR-FS and mini-ImageNet live (digits needs none)
    ways: int = 5
    shots: int = 1
    iterations: int = 40  # meta-steps per run (literature: 60,000; the quick profile shows the trend, not the end)
    meta_batch: int = 16
    eval_tasks: int = 200  # test episodes per run (literature: 600)
    seeds: int = 3  # training seeds per setting: the interval is over them (Student-t, 2 degrees of freedom)
    width: int | None = 16  # conv channels (None: 64 for Omniglot, 32 otherwise)
    alpha: float = 0.5
    meta_lr: float = 0.003
    device: str = "cpu"


def available(config: Settings) -> dict[str, str | None]:
    """dataset -> None if it loads, else the loader's one-line reason."""
    out = {}
    for name in config.datasets:
        try:
            load_pool(name, "test", config.data_root)
            out[name] = None
        except DatasetError as err:
            out[name] = str(err)
    return out


def _run(config: Settings, dataset: str, method: str, remedy: str, depth: int, seed: int) -> dict:
    vision = VisionConfig(dataset=dataset, data_root=config.data_root, ways=config.ways, shots=config.shots,
                          method=method, depth=depth, width=config.width, iterations=config.iterations,
                          meta_batch=config.meta_batch, eval_tasks=config.eval_tasks, alpha=config.alpha,
                          meta_lr=config.meta_lr, device=config.device, seed=seed, validation_tasks=0)
    try:
        report = run_vision(replace(vision, **REMEDIES[remedy]), progress=False)
    except (DivergenceError, FloatingPointError) as err:
        return {"diverged": str(err)}
    # no timings: the same seed writes the same record bytes
    return {key: report[key] for key in ("test_accuracy", "ci95", "test_tasks", "classes")}


def _settings(config: Settings, status: dict[str, str | None]):
    """(unit key, dataset, method, depth name, remedy) of every setting on a present dataset, in the figure's order."""
    for dataset in (d for d, reason in status.items() if reason is None):
        for method in METHODS:
            for depth_name in DEPTHS:
                for remedy in REMEDIES:
                    yield f"{dataset}/{method}/{depth_name}/{remedy}", dataset, method, depth_name, remedy


def _seeds(config: Settings, seed: int) -> list[int]:
    """The training seeds of every setting (the first is ``seed`` itself)."""
    return [seed + 100 * s for s in range(config.seeds)]


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """One run per present dataset × method × depth × remedy × training seed: key -> a picklable zero-argument
    callable."""
    return {f"{key}/seed{s}": partial(_run, config, dataset, method, remedy, DEPTHS[depth], s)
            for key, dataset, method, depth, remedy in _settings(config, available(config))
            for s in _seeds(config, seed)}


def _summary(per_seed: list[dict]) -> dict:
    """A setting's mean accuracy over the seeds that did not diverge, with its Student-t 95% interval."""
    accuracies = [r["test_accuracy"] for r in per_seed if "test_accuracy" in r]
    out = {"seeds": len(accuracies), "diverged_seeds": len(per_seed) - len(accuracies), "per_seed": per_seed}
    if len(accuracies) >= 2:
        out["test_accuracy"], out["ci95"] = mean_ci95(accuracies)
    return out


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    status = available(config)
    runs = [{"dataset": dataset, "method": method, "depth": depth, "remedy": remedy,
             **_summary([done[f"{key}/seed{s}"] | {"seed": s} for s in _seeds(config, seed)])}
            for key, dataset, method, depth, remedy in _settings(config, status)]
    return {"runs": runs, "unavailable": {d: r for d, r in status.items() if r is not None},
            "ways": config.ways, "shots": config.shots, "iterations": config.iterations,
            "eval_tasks": config.eval_tasks, "seeds": config.seeds}
