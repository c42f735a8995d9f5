"""verify checks of theory.bayes_floor: the Bayes floor (quadrature, Monte-Carlo over support sets, exact 0)
against the posterior-mean estimator applied to sampled tasks (simulations.twins.bayes_floor).

Two rules beside interval_check, written here for this stem:

* where the theory is itself Monte-Carlo (``BayesFloor.ci95 > 0``), the twin's interval uses both standard
  errors, |theory − mean| ≤ Z_CHECK · √(se_twin² + se_theory²): the two estimates are independent;
* the noiseless exact 0 is an identity on the loss scale: |twin mean − theory| ≤ IDENTITY_TOL · ½ tr(Σx Σw),
  the prior's loss before any adaptation (the twin's posterior mean equals w_τ up to rounding).
"""
from __future__ import annotations

import math

import numpy as np

from simulations.checks.rules import Check
from simulations.checks.wishart_moments import random_spd
from simulations.statistics import Estimate
from simulations.twins.bayes_floor import estimate_bayes_optimal_loss
from theory.bayes_floor import BayesFloor, bayes_optimal_loss
from theory.ground.statistics import IDENTITY_TOL, Z_CHECK
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


def two_estimate_check(name: str, setting: str, floor: BayesFloor, est: Estimate) -> Check:
    """|floor − twin mean| ≤ Z_CHECK · √(se_twin² + se_floor²) (module doc); se_floor = 0 unless Monte-Carlo."""
    combined = Estimate(est.mean, math.hypot(est.stderr, floor.stderr), est.n)
    score = combined.score(floor.value)
    what = "combined se" if floor.ci95 > 0 else "se"
    return Check(name, setting, floor.value, est.mean,
                 f"±{Z_CHECK * combined.stderr:.3g} ({Z_CHECK:g} {what}, twin n={est.n}, theory {floor.method})",
                 bool(score <= 1), "interval", score)


def zero_loss_check(name: str, setting: str, floor: BayesFloor, est: Estimate, scale: float) -> Check:
    """|twin mean − floor| ≤ IDENTITY_TOL · scale (module doc): an identity on the loss scale ``scale``."""
    ratio = abs(est.mean - floor.value) / scale
    return Check(name, setting, floor.value, est.mean,
                 f"|gap| over the loss scale {scale:.3g}: max rel. residual {ratio:.1e} ≤ {IDENTITY_TOL:g}",
                 bool(ratio <= IDENTITY_TOL), "identity", ratio / IDENTITY_TOL)


def check_rank_one(scale: float) -> Check:
    family = rank_one_family()
    floor = bayes_optimal_loss(family)
    est = estimate_bayes_optimal_loss(family, int(100_000 * scale), seed=21)
    return two_estimate_check("bayes_floor.rank_one", "d=6, K=3, rank 1, diagonal Σx, s²=0.3, μ≠0 (quadrature)",
                              floor, est)


def check_isotropic_subspace(scale: float) -> Check:
    family = LinearTaskFamily.subspace(8, 5, 20, rank=3, noise_var=0.5, mean_norm=1.0, seed=1)
    floor = bayes_optimal_loss(family, THEORY_SAMPLES, seed=22)
    est = estimate_bayes_optimal_loss(family, int(100_000 * scale), seed=23)
    return two_estimate_check("bayes_floor.isotropic_subspace",
                              f"Σx=I, d=8, K=5, r=3, s²=0.5 (theory {floor.method}, n={THEORY_SAMPLES})", floor, est)


def check_general(scale: float) -> Check:
    family = general_family()
    floor = bayes_optimal_loss(family, THEORY_SAMPLES, seed=24)
    est = estimate_bayes_optimal_loss(family, int(100_000 * scale), seed=25)
    return two_estimate_check("bayes_floor.general",
                              f"d=5, K=4, random Σx, rank-3 Σw, s²=0.25 (theory {floor.method}, n={THEORY_SAMPLES})",
                              floor, est)


def check_noiseless_exact(scale: float) -> Check:
    rng = np.random.default_rng(9)
    family = LinearTaskFamily.subspace(8, 4, 20, rank=3, mean_norm=1.0, input_cov=random_spd(8, rng), seed=3)
    floor = bayes_optimal_loss(family)
    est = estimate_bayes_optimal_loss(family, int(20_000 * scale), seed=26)
    prior_loss = 0.5 * float(np.trace(family.input_cov @ family.task_cov))  # ½ tr(Σx Σw), s² = 0
    return zero_loss_check("bayes_floor.noiseless_exact", "s²=0, d=8, K=4 ≥ r=3, random Σx: Σ_post = 0",
                           floor, est, prior_loss)


CHECKS = [check_rank_one, check_isotropic_subspace, check_general, check_noiseless_exact]
