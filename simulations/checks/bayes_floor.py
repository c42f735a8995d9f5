"""verify checks of theory.bayes_floor: the Bayes floor (quadrature, Monte-Carlo over support sets, exact 0)
against the posterior-mean estimator applied to sampled tasks (simulations.twins.bayes_floor).

Two of the rules (simulations.checks.rules) fit this stem:

* where the theory is itself Monte-Carlo (``BayesFloor.ci95 > 0``), two_estimate_check: the twin's interval
  uses both standard errors, |theory − mean| ≤ Z_CHECK · √(se_twin² + se_theory²) (independent estimates);
* the noiseless exact 0, zero_gap_check: an identity on the loss scale, |twin mean − theory| ≤ IDENTITY_TOL ·
  ½ tr(Σx Σw), the prior's loss before any adaptation (the twin's posterior mean equals w_τ up to rounding).
"""
from __future__ import annotations

import math

import numpy as np

from simulations.checks.fixtures import random_spd
from simulations.checks.rules import Check, declare, two_estimate_check, zero_gap_check
from simulations.twins.bayes_floor import estimate_bayes_optimal_loss
from theory.bayes_floor import bayes_optimal_loss
from theory.task_family import LinearTaskFamily

THEORY_SAMPLES = 400_000  # the theory's own Monte-Carlo: its se is ~7× below the twin's at 100,000 tasks


def rank_one_family() -> LinearTaskFamily:
    """d = 6, K = 3, Q = 20, rank 1, anisotropic diagonal Σx, s² = 0.3, ‖μ‖ = 0.5."""
    return LinearTaskFamily.subspace(6, 3, 20, rank=1, noise_var=0.3, mean_norm=0.5, task_scale=1.2,
                                     input_cov=np.diag([0.5, 1.0, 2.0, 3.0, 0.7, 1.5]), seed=2)


def general_family() -> LinearTaskFamily:
    """d = 5, K = 4, Q = 20, random Σx and a random rank-3 Σw, s² = 0.25, random μ."""
    rng = np.random.default_rng(8)
    f = rng.standard_normal((5, 3)) / math.sqrt(3)
    return LinearTaskFamily.from_covariances(5, 4, 20, task_cov=f @ f.T, input_cov=random_spd(5, rng),
                                             task_mean=rng.standard_normal(5), noise_var=0.25)


def check_rank_one(scale: float) -> Check:
    family = rank_one_family()
    floor = bayes_optimal_loss(family)
    est = estimate_bayes_optimal_loss(family, int(100_000 * scale), seed=21)
    return two_estimate_check("d=6, K=3, rank 1, diagonal Σx, s²=0.3, μ≠0 (quadrature)",
                              floor.value, floor.stderr, floor.method, est)


def check_isotropic_subspace(scale: float) -> Check:
    family = LinearTaskFamily.subspace(8, 5, 20, rank=3, noise_var=0.5, mean_norm=1.0, seed=1)
    floor = bayes_optimal_loss(family, THEORY_SAMPLES, seed=22)
    est = estimate_bayes_optimal_loss(family, int(100_000 * scale), seed=23)
    return two_estimate_check(f"Σx=I, d=8, K=5, r=3, s²=0.5 (theory {floor.method}, n={THEORY_SAMPLES})",
                              floor.value, floor.stderr, floor.method, est)


def check_general(scale: float) -> Check:
    family = general_family()
    floor = bayes_optimal_loss(family, THEORY_SAMPLES, seed=24)
    est = estimate_bayes_optimal_loss(family, int(100_000 * scale), seed=25)
    return two_estimate_check(f"d=5, K=4, random Σx, rank-3 Σw, s²=0.25 (theory {floor.method}, n={THEORY_SAMPLES})",
                              floor.value, floor.stderr, floor.method, est)


def check_noiseless_exact(scale: float) -> Check:
    rng = np.random.default_rng(9)
    family = LinearTaskFamily.subspace(8, 4, 20, rank=3, mean_norm=1.0, input_cov=random_spd(8, rng), seed=3)
    floor = bayes_optimal_loss(family)
    est = estimate_bayes_optimal_loss(family, int(20_000 * scale), seed=26)
    prior_loss = 0.5 * float(np.trace(family.input_cov @ family.task_cov))  # ½ tr(Σx Σw), s² = 0
    return zero_gap_check("s²=0, d=8, K=4 ≥ r=3, random Σx: Σ_post = 0", floor.value, est, prior_loss)


CHECKS = declare("bayes_floor", {
    "rank_one": check_rank_one,
    "isotropic_subspace": check_isotropic_subspace,
    "general": check_general,
    "noiseless_exact": check_noiseless_exact,
})
