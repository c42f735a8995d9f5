"""verify checks of theory.fixed_points: each algorithm's outer direction vanishes at its closed-form fixed point
(Monte-Carlo over the mixture, finite K and K = ∞), a repelling FO-MAML point has the predicted negative rate,
meta-training settles at the fixed point, and the rescaled mixture loss equals the word-moment engine's.

K = ∞ twins run the engine's inner loop on a support set whose second moment is exactly Σx (simulations.twins
.fixed_points), i.e. literal population-gradient steps; the query set stays random.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np

from simulations.checks.rules import Check, declare, identity_check, interval_check, runs_optimum_check
from simulations.twins.fixed_points import meta_trained_fixed_point, outer_direction
from theory.fixed_points import (
    ALGORITHMS,
    Mixture,
    TaskGroup,
    fixed_points,
    group_family,
    mixture_post_adaptation_loss,
)
from theory.shallow_maml import post_adaptation_loss

GROUPS = (TaskGroup(0.5, 1.0, 1.0, 0.2), TaskGroup(0.5, 0.1, -1.0, 0.2))  # the easy and hard groups
SETTING = {"alpha": 0.5, "steps": 2, "noise_var": 0.1}
DIRECTION_DIM, TRAIN_DIM = 2, 1
REPELLING = (TaskGroup(0.5, 3.0, 1.0), TaskGroup(0.5, 0.1, -1.0))  # α a = 1.5 > 1 with k = 1: FO-MAML's λ < 0


def _label(support) -> str:
    return "inf" if math.isinf(support) else f"K{support}"


def _direction(scale: float, algorithm: str, support) -> Check:
    mixture = Mixture(GROUPS, DIRECTION_DIM, support=support, **SETTING)
    point = fixed_points(mixture)[algorithm]
    est = outer_direction(mixture, point.theta, algorithm,
                          n_tasks=int(10_000 * scale), seed=1 + ALGORITHMS.index(algorithm))
    return interval_check(f"2 groups (a=1, 0.1; m=±1; v=0.2), d=2, α=0.5, k=2, K={support}, s²=0.1: "
                          f"mean outer direction at θ* (1ᵀD/d)", 0.0, est)


def _meta_trained(scale: float, algorithm: str, support) -> Check:
    mixture = Mixture(GROUPS, TRAIN_DIM, support=support, **SETTING)
    theory = fixed_points(mixture)[algorithm].theta[0]
    runs = 5  # the interval is Student-t over runs; 60 iterations at least, so the transient has decayed
    trained = meta_trained_fixed_point(mixture, algorithm, runs=runs,
                                       iterations=int(80 * scale) + 60, seed=20)
    return runs_optimum_check(f"d=1, α=0.5, k=2, K={support}, s²=0.1: SGD (constant, then cosine decay), {runs} runs",
                              theory, trained.theta[0], trained.stderr[0], runs)


def check_repelling_rate(scale: float) -> Check:
    mixture = Mixture(REPELLING, 1, 0.5, 1, math.inf)
    point = fixed_points(mixture)["fomaml"]
    est = outer_direction(mixture, point.theta + 1, "fomaml", n_tasks=int(10_000 * scale),
                          seed=9)
    return interval_check("a=3, 0.1; m=±1; α=0.5, k=1, K=∞: FO-MAML direction at θ*+1 = h < 0 (repelling)",
                          point.rate, est)


def check_rescaled_loss(scale: float) -> Check:
    """The rescaled mixture loss against shallow_maml's word-moment engine on the Σx = a I families (k = 2)."""
    theta = np.array([0.3, -0.2])
    mine = mixture_post_adaptation_loss(Mixture(GROUPS, 2, 0.5, 2, 5, 0.1), theta)
    direct = sum(g.prob * post_adaptation_loss(group_family(g, 2, 5, noise_var=0.1), theta, 0.5, 2) for g in GROUPS)
    return identity_check("d=2, K=5, k=2, α=0.5, s²=0.1, θ=(0.3, −0.2)", mine, direct)


def _each(compute, support) -> dict:
    """``compute`` for every algorithm at ``support``: quantity -> the check (partial: picklable for Dask)."""
    name = compute.__name__.removeprefix("_")
    return {f"{a}_{name}_{_label(support)}": partial(compute, algorithm=a, support=support) for a in ALGORITHMS}


CHECKS = declare("fixed_points", {
    **_each(_direction, 5), **_each(_direction, math.inf),
    "fomaml_repelling_rate": check_repelling_rate,
    **_each(_meta_trained, 5), **_each(_meta_trained, math.inf),
    "rescaled_loss": check_rescaled_loss,
})
