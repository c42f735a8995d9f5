"""Figure 9's numbers: (a) MAML on a finite task set swept over the training step (Bernacchia 2021);
(b) the fixed points of MAML, FO-MAML, Reptile and ERM on tasks of different hardness, closed form and meta-trained.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from simulations.experiments.finite_tasks import FiniteTasksConfig
from simulations.experiments.finite_tasks import run as run_finite_tasks
from simulations.twins.fixed_points import meta_trained_fixed_point
from theory.fixed_points import Mixture, TaskGroup, fixed_points

ALGORITHMS = ("maml", "fomaml", "reptile", "erm")


@dataclass(frozen=True)
class Settings:
    """Figure 9's setting: the finite task sets of panel (a) and the task groups of panel (b)."""

    # (a): Bernacchia's overparameterised setting (d > m·n_v)
    dim: int = 60
    tasks: int = 3  # m
    train_support: int = 30  # n_t
    train_query: int = 2  # n_v
    test_support: int = 20  # n_r
    noise_var: float = 1.0  # s²
    task_norm2: float = 0.25  # E‖w − w₀‖², so V = task_norm2 / d per direction
    test_alpha: float = 0.2  # α_r
    train_alphas: tuple[float, ...] = tuple(round(-2.0 + 0.2 * i, 1) + 0.0 for i in range(16))  # α_t: -2 … 1
    runs: int = 1000  # training sets per α_t
    # (b): two groups, α = 0.5
    groups: tuple[TaskGroup, ...] = (TaskGroup(0.5, 1.0, 1.0), TaskGroup(0.5, 0.1, -1.0))
    alpha: float = 0.5
    k_max: int = 6  # closed-form curves for k = 1 … k_max
    supports: tuple[float, ...] = (math.inf, 5)  # K
    sim_steps: tuple[int, ...] = (1, 3)  # meta-trained points at these k
    sim_runs: int = 3  # independent meta-training runs per point
    sim_iterations: int = 120


def _support_key(support: float) -> str:
    return "inf" if math.isinf(support) else f"{support:g}"


def _finite(config: Settings, seed: int) -> dict:
    report = run_finite_tasks(FiniteTasksConfig(
        dim=config.dim, tasks=config.tasks, train_support=config.train_support, train_query=config.train_query,
        test_support=config.test_support, noise_var=config.noise_var, task_var=config.task_norm2 / config.dim,
        train_alpha=config.train_alphas, test_alpha=config.test_alpha, runs=config.runs, seed=seed))
    return {key: value for key, value in report.items() if key != "config"}


def _meta_trained(config: Settings, algorithm: str, steps: int, support: float, seed: int) -> dict:
    est = meta_trained_fixed_point(Mixture(config.groups, 1, config.alpha, steps, support), algorithm,
                                   runs=config.sim_runs, iterations=config.sim_iterations, seed=seed)
    return {"algorithm": algorithm, "steps": steps, "support": _support_key(support), **est.as_dict()}


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """Panel (a) in one unit; one unit per meta-trained (algorithm, k, K) point of panel (b)."""
    out = {"finite": partial(_finite, config, seed)}
    out.update({f"sim/{a}/{k}/{_support_key(s)}": partial(_meta_trained, config, a, k, s, seed)
                for s in config.supports for k in config.sim_steps for a in ALGORITHMS})
    return out


def _theory(config: Settings) -> list[dict]:
    rows = []
    for support in config.supports:
        for k in range(1, config.k_max + 1):
            points = fixed_points(Mixture(config.groups, 1, config.alpha, k, support))
            for algorithm in ALGORITHMS:
                p = points[algorithm]
                rows.append({"algorithm": algorithm, "steps": k, "support": _support_key(support),
                             "theta": None if p.theta is None else float(p.theta[0]),
                             "post_adaptation_loss": p.post_adaptation_loss, "stable": p.stable, "note": p.note})
    return rows


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    groups = [{"prob": g.prob, "input_var": g.input_var, "task_mean": g.task_mean} for g in config.groups]
    return {"finite": done["finite"], "fixed_points": _theory(config), "groups": groups, "alpha": config.alpha,
            "simulation": [done[key] for key in units(config, seed) if key.startswith("sim/")],
            "setting": {"dim": config.dim, "tasks": config.tasks, "train_support": config.train_support,
                        "train_query": config.train_query, "test_support": config.test_support,
                        "noise_var": config.noise_var, "task_norm2": config.task_norm2,
                        "test_alpha": config.test_alpha, "runs": config.runs}}
