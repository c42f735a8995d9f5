"""Figure 10's numbers: how meta-training gets there (theory.dynamics), held against plain SGD.

(a) ANIL on an anisotropic task spectrum: the exact gradient-flow curve (every mode a logistic curve), the
switch-on times, the full-batch recursion at the SGD step η and plain SGD from the same start (mean and 95%
interval over seeds, each on fresh tasks). (b) Shallow MAML against joint training (ERM, the pre-adaptation
loss) from the same start: each one's excess over its own limit, exact, with plain SGD points. (c) Depth-2 full
MAML on figure 3's family: the fraction of seeded default starts (the head scaled) whose numerical gradient flow
ends within BASIN_TOL of the best loss known, per width and head scale, with Wilson intervals.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from simulations.experiments.dynamics import BASIN_TOL, basin_cells
from simulations.experiments.settings import PAPER
from simulations.maml import InnerLoop
from simulations.statistics import mean_ci95
from simulations.twins.dynamics import sgd_losses, shallow_start, two_layer_start
from theory import dynamics, shallow_maml
from theory.task_family import LinearTaskFamily

__all__ = ["BASIN_TOL", "Settings", "assemble", "units"]


@dataclass(frozen=True)
class Settings:
    """Figure 10's settings: the three panels' families, starts, SGD runs and the depth-2 grid."""

    anil_spectrum: tuple[float, ...] = (2.0, 1.0, 0.5, 0.1, 0.02, 0.0)  # (a) Σw = diag(…), Σx = I, μ = 0
    anil_support: int = 4
    anil_noise: float = 0.25
    anil_alpha: float = 0.1
    anil_init: float = 0.1  # W(0) = C·Uᵀ
    anil_eta: float = 0.5  # SGD's fixed meta learning rate (the recursion at the same η is drawn)
    anil_last: float = 800.0  # the last time t shown (the slowest mode switches on at t ≈ 369)
    shallow_init: float = 3.0  # (b) ‖θ₀ − μ‖ on PAPER's family (d = 50, K = 5, r = 2) at α*
    shallow_eta: float = 0.05
    shallow_last: float = 2.0
    sgd_seeds: int = 3  # SGD runs per point
    sgd_batch: int = 500  # tasks per SGD step
    eval_tasks: int = 1000  # fresh tasks per run and time
    depth2_dim: int = 20  # (c) figure 3's family: d = 20, K = 5, r = 2, α = α*_shallow
    depth2_widths: tuple[int, ...] = (1, 2, 4)
    depth2_scales: tuple[float, ...] = (0.1, 0.3, 1.0, 3.0)  # the head's scale over PyTorch's default init
    depth2_starts: int = 5  # seeded starts per (width, scale)
    depth2_horizon: float = 300.0  # gradient-flow time integrated


def anil_family(config: Settings) -> LinearTaskFamily:
    d = len(config.anil_spectrum)
    return LinearTaskFamily.from_covariances(d, config.anil_support, 20, task_cov=np.diag(config.anil_spectrum),
                                             noise_var=config.anil_noise)


def _steps(last: float, eta: float, n: int = 14) -> np.ndarray:
    """0 and about n log-spaced whole step counts up to t = last."""
    return np.concatenate([[0], np.unique(np.rint(np.geomspace(1, last / eta, n)).astype(int))])


def _anil(config: Settings, seed: int) -> dict:
    family, alpha, eta = anil_family(config), config.anil_alpha, config.anil_eta
    w0 = dynamics.anil_start(family, family.dim, config.anil_init)
    fine = np.concatenate([[0.0], np.geomspace(0.05, config.anil_last, 120)])
    curve = dynamics.anil_flow(family, alpha, fine, w0=w0)
    steps = _steps(config.anil_last, eta)
    sgd = sgd_losses(family, two_layer_start(family, w0, np.zeros(family.dim)), InnerLoop(alpha, adapt="head"), eta,
                     steps, config.sgd_batch, config.sgd_seeds, config.eval_tasks, seed=seed)
    return {"times": fine.tolist(), "flow": curve.loss.tolist(), "limit": curve.limit, "method": curve.method,
            "switch_on_times": list(curve.switch_on_times), "steps": steps.tolist(),
            "recursion": dynamics.anil_recursion(family, alpha, w0, eta, steps).tolist(),
            "flow_at_steps": dynamics.anil_flow(family, alpha, steps * eta, w0=w0).loss.tolist(),
            "sgd": [list(mean_ci95(row)) for row in sgd]}


def _shallow_family() -> LinearTaskFamily:
    return LinearTaskFamily.subspace(PAPER.dim, PAPER.support, PAPER.query, rank=PAPER.rank, seed=0)


def _shallow(config: Settings, seed: int, which: str) -> dict:
    """MAML (at α*) or joint training (α = 0) from θ₀ = μ + C·u: the exact excess curve and SGD's."""
    family = _shallow_family()
    alpha = shallow_maml.optimal_step_size(family) if which == "maml" else 0.0
    direction = np.random.default_rng(seed + 1).standard_normal(family.dim)
    theta0 = family.task_mean + config.shallow_init * direction / np.linalg.norm(direction)
    fine = np.linspace(0.0, config.shallow_last, 81)
    curve = dynamics.shallow_flow(family, theta0, alpha, fine)
    steps = _steps(config.shallow_last, config.shallow_eta, 10)
    sgd = sgd_losses(family, shallow_start(family, theta0), InnerLoop(alpha), config.shallow_eta, steps,
                     config.sgd_batch, config.sgd_seeds, config.eval_tasks, seed=seed + (0 if which == "maml" else 50))
    return {"alpha": alpha, "times": fine.tolist(), "flow": curve.loss.tolist(), "limit": curve.limit,
            "steps": steps.tolist(), "sgd": [list(mean_ci95(row)) for row in sgd],
            "curvature": float(dynamics.shallow_hessian(family, alpha)[0, 0])}


def _depth2_family(config: Settings) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(config.depth2_dim, PAPER.support, PAPER.query, rank=PAPER.rank, seed=0)


def _depth2(config: Settings, seed: int, width: int) -> dict:
    family = _depth2_family(config)
    alpha = shallow_maml.optimal_step_size(family)
    cells, _ = basin_cells(family, width, config.depth2_scales, config.depth2_starts, alpha,
                           [0.0, config.depth2_horizon], seed)
    return {"alpha": alpha, "cells": cells}


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    return ({"anil": partial(_anil, config, seed), "shallow/maml": partial(_shallow, config, seed, "maml"),
             "shallow/erm": partial(_shallow, config, seed, "erm")}
            | {f"depth2/{h}": partial(_depth2, config, seed, h) for h in config.depth2_widths})


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    family = _shallow_family()
    alpha = done["shallow/maml"]["alpha"]
    return {"anil": done["anil"] | {"spectrum": list(config.anil_spectrum), "support": config.anil_support,
                                    "noise_var": config.anil_noise, "alpha": config.anil_alpha,
                                    "init_scale": config.anil_init, "eta": config.anil_eta},
            "shallow": {"maml": done["shallow/maml"], "erm": done["shallow/erm"], "dim": family.dim,
                        "support": family.support, "rank": PAPER.rank, "init_scale": config.shallow_init,
                        "eta": config.shallow_eta,
                        "slowdown": dynamics.isotropic_slowdown(family.dim, family.support, alpha)},
            "depth2": {"dim": config.depth2_dim, "support": PAPER.support, "rank": PAPER.rank,
                       "alpha": done[f"depth2/{config.depth2_widths[0]}"]["alpha"], "tol": BASIN_TOL,
                       "horizon": config.depth2_horizon, "starts": config.depth2_starts,
                       "cells": [c for h in config.depth2_widths for c in done[f"depth2/{h}"]["cells"]]},
            "sgd_seeds": config.sgd_seeds, "sgd_batch": config.sgd_batch, "eval_tasks": config.eval_tasks}
