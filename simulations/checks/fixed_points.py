"""verify checks of theory.fixed_points: each algorithm's outer direction vanishes at its closed-form fixed point
(Monte-Carlo over the mixture, finite K and K = ∞), a repelling FO-MAML point has the predicted negative rate,
meta-training settles at the fixed point, and the rescaled mixture loss equals the word-moment engine's.

K = ∞ twins run the engine's inner loop on a support set whose second moment is exactly Σx (simulations.twins
.fixed_points), i.e. literal population-gradient steps; the query set stays random.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats

from simulations.checks.rules import Check, identity_check, interval_check, optimum_check
from simulations.twins.fixed_points import meta_trained_fixed_point, outer_direction
from theory.fixed_points import ALGORITHMS, TaskGroup, fixed_points, group_family, mixture_post_adaptation_loss
from theory.shallow_maml import post_adaptation_loss

GROUPS = (TaskGroup(0.5, 1.0, 1.0, 0.2), TaskGroup(0.5, 0.1, -1.0, 0.2))  # the easy and hard groups
SETTING = {"alpha": 0.5, "steps": 2, "noise_var": 0.1}
DIRECTION_DIM, TRAIN_DIM = 2, 1
REPELLING = (TaskGroup(0.5, 3.0, 1.0), TaskGroup(0.5, 0.1, -1.0))  # α a = 1.5 > 1 with k = 1: FO-MAML's λ < 0


def _label(support) -> str:
    return "inf" if math.isinf(support) else f"K{support}"


def _direction(scale: float, algorithm: str, support) -> Check:
    point = fixed_points(GROUPS, DIRECTION_DIM, support=support, **SETTING)[algorithm]
    est = outer_direction(GROUPS, point.theta, algorithm, DIRECTION_DIM, support=support,
                          n_tasks=int(10_000 * scale), seed=1 + ALGORITHMS.index(algorithm), **SETTING)
    return interval_check(f"fixed_points.{algorithm}_direction_{_label(support)}",
                          f"2 groups (a=1, 0.1; m=±1; v=0.2), d=2, α=0.5, k=2, K={support}, s²=0.1: "
                          f"mean outer direction at θ* (1ᵀD/d)", 0.0, est)


def _meta_trained(scale: float, algorithm: str, support) -> Check:
    theory = fixed_points(GROUPS, TRAIN_DIM, support=support, **SETTING)[algorithm].theta[0]
    runs = 5  # the interval is Student-t over runs; 60 iterations at least, so the transient has decayed
    trained = meta_trained_fixed_point(GROUPS, algorithm, TRAIN_DIM, support=support, runs=runs,
                                       iterations=int(80 * scale) + 60, seed=20, **SETTING)
    unit = abs(theory) if theory != 0 else 1.0  # relative to |θ*|, as every optimum check
    allowed = stats.t.ppf(0.9995, runs - 1) * trained.stderr[0] / unit
    return optimum_check(f"fixed_points.{algorithm}_meta_trained_{_label(support)}",
                         f"d=1, α=0.5, k=2, K={support}, s²=0.1: SGD (constant, then cosine decay), {runs} runs",
                         theory, trained.theta[0], abs(trained.theta[0] - theory) / unit, allowed,
                         f"|θ − θ*|/|θ*| vs t_{runs - 1}(99.95%)·se/|θ*| over runs")


def check_maml_direction_K5(scale: float) -> Check:
    return _direction(scale, "maml", 5)


def check_fomaml_direction_K5(scale: float) -> Check:
    return _direction(scale, "fomaml", 5)


def check_reptile_direction_K5(scale: float) -> Check:
    return _direction(scale, "reptile", 5)


def check_erm_direction_K5(scale: float) -> Check:
    return _direction(scale, "erm", 5)


def check_maml_direction_inf(scale: float) -> Check:
    return _direction(scale, "maml", math.inf)


def check_fomaml_direction_inf(scale: float) -> Check:
    return _direction(scale, "fomaml", math.inf)


def check_reptile_direction_inf(scale: float) -> Check:
    return _direction(scale, "reptile", math.inf)


def check_erm_direction_inf(scale: float) -> Check:
    return _direction(scale, "erm", math.inf)


def check_repelling_rate(scale: float) -> Check:
    point = fixed_points(REPELLING, 1, 0.5, 1, math.inf)["fomaml"]
    est = outer_direction(REPELLING, point.theta + 1, "fomaml", 1, 0.5, 1, math.inf, n_tasks=int(10_000 * scale),
                          seed=9)
    return interval_check("fixed_points.fomaml_repelling_rate",
                          "a=3, 0.1; m=±1; α=0.5, k=1, K=∞: FO-MAML direction at θ*+1 = h < 0 (repelling)",
                          point.rate, est)


def check_maml_meta_trained_K5(scale: float) -> Check:
    return _meta_trained(scale, "maml", 5)


def check_fomaml_meta_trained_K5(scale: float) -> Check:
    return _meta_trained(scale, "fomaml", 5)


def check_reptile_meta_trained_K5(scale: float) -> Check:
    return _meta_trained(scale, "reptile", 5)


def check_erm_meta_trained_K5(scale: float) -> Check:
    return _meta_trained(scale, "erm", 5)


def check_maml_meta_trained_inf(scale: float) -> Check:
    return _meta_trained(scale, "maml", math.inf)


def check_fomaml_meta_trained_inf(scale: float) -> Check:
    return _meta_trained(scale, "fomaml", math.inf)


def check_reptile_meta_trained_inf(scale: float) -> Check:
    return _meta_trained(scale, "reptile", math.inf)


def check_erm_meta_trained_inf(scale: float) -> Check:
    return _meta_trained(scale, "erm", math.inf)


def check_rescaled_loss(scale: float) -> Check:
    """The rescaled mixture loss against shallow_maml's word-moment engine on the Σx = a I families (k = 2)."""
    theta = np.array([0.3, -0.2])
    mine = mixture_post_adaptation_loss(GROUPS, theta, 2, 0.5, 2, 5, 0.1)
    direct = sum(g.prob * post_adaptation_loss(group_family(g, 2, 5, noise_var=0.1), theta, 0.5, 2) for g in GROUPS)
    return identity_check("fixed_points.rescaled_loss", "d=2, K=5, k=2, α=0.5, s²=0.1, θ=(0.3, −0.2)", mine, direct)


CHECKS = [check_maml_direction_K5, check_fomaml_direction_K5, check_reptile_direction_K5, check_erm_direction_K5,
          check_maml_direction_inf, check_fomaml_direction_inf, check_reptile_direction_inf, check_erm_direction_inf,
          check_repelling_rate,
          check_maml_meta_trained_K5, check_fomaml_meta_trained_K5, check_reptile_meta_trained_K5,
          check_erm_meta_trained_K5, check_maml_meta_trained_inf, check_fomaml_meta_trained_inf,
          check_reptile_meta_trained_inf, check_erm_meta_trained_inf, check_rescaled_loss]
