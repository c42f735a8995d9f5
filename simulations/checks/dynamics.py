"""verify checks of theory.dynamics: the closed-form curves against their numerical integration (float64), the
limits against the optima they must reach, and plain SGD from the same start against the full-batch recursion
(shallow, ANIL) and the numerical flow's end (depth 2), each through an interval over seeds."""
from __future__ import annotations

import numpy as np

from simulations.checks.fixtures import random_spd
from simulations.checks.rules import Check, declare, identity_check, interval_check
from simulations.maml import InnerLoop
from simulations.statistics import Estimate
from simulations.twins.dynamics import depth2_starts, sgd_losses, shallow_start, two_layer_start
from theory import anil_width, dynamics, shallow_maml
from theory.task_family import LinearTaskFamily

FLOW_TOL = 1e-8  # a closed-form curve against scipy's DOP853 at rtol 1e-11
ISSUE_SPECTRUM = (2.0, 1.0, 0.5, 0.1, 0.02, 0.0)  # issue 17's anisotropic staircase: K = 4, s² = 0.25, α = 0.1


def issue_family() -> LinearTaskFamily:
    return LinearTaskFamily.from_covariances(6, 4, 20, task_cov=np.diag(ISSUE_SPECTRUM), noise_var=0.25)


def check_anil_logistic(scale: float) -> Check:
    family, alpha = issue_family(), 0.1
    times = np.geomspace(0.1, 3000, 25)
    w0 = dynamics.anil_start(family, 6, 0.1)
    curve = dynamics.anil_flow(family, alpha, times, w0=w0)
    q = dynamics.integrate_anil(family, alpha, w0, times)
    return identity_check(f"spectrum {ISSUE_SPECTRUM}, K=4, s²=0.25, α=0.1, W(0) = 0.1·Uᵀ, t ≤ 3000: logistic "
                          f"modes ({curve.method}) vs the integrated matrix ODE",
                          curve.loss, [dynamics.anil_loss_of_q(family, qi) for qi in q], tol=FLOW_TOL)


def check_anil_any_start(scale: float) -> Check:
    rng = np.random.default_rng(41)
    family = LinearTaskFamily.from_covariances(5, 3, 10, task_cov=0.7 * np.eye(5), noise_var=0.1)
    w0 = 0.3 * rng.standard_normal((3, 5))  # not aligned with anything
    times = np.geomspace(0.1, 500, 20)
    curve = dynamics.anil_flow(family, 0.2, times, w0=w0)
    q = dynamics.integrate_anil(family, 0.2, w0, times)
    return identity_check("Σw = 0.7·I, d=5, K=3, s²=0.1, h=3, random W(0): closed form from any start vs the "
                          "integrated matrix ODE", curve.loss, [dynamics.anil_loss_of_q(family, qi) for qi in q],
                          tol=FLOW_TOL)


def check_anil_limit(scale: float) -> Check:
    family = issue_family()
    curve = dynamics.anil_flow(family, 0.1, [0.0], width=3, init_scale=0.1)
    return identity_check("issue spectrum, h=3 aligned rows: the flow's limit vs anil_width's rank-3 optimum L_h",
                          curve.limit, anil_width.rank_limited_best_post_loss(family, 3))


def check_shallow_slowdown(scale: float) -> Check:
    family = LinearTaskFamily.subspace(30, 6, 10, rank=3, seed=2)
    alpha = 0.7 * shallow_maml.optimal_step_size(family)
    return identity_check(f"Σx = I, d=30, K=6, α={alpha:.4f}: H from the Wishart moments vs h·I, h = (1 − α)² + "
                          "α²(d + 1)/K", dynamics.shallow_hessian(family, alpha),
                          dynamics.isotropic_slowdown(30, 6, alpha) * np.eye(30))


def _worst(setting: str, exact, per_seed: np.ndarray, iterations) -> Check:
    """The time whose seed mean lies furthest (in standard errors) from the exact value: every time must pass."""
    estimates = [Estimate.from_samples(row) for row in per_seed]
    scores = [e.score(x) for e, x in zip(estimates, exact)]
    i = int(np.argmax(scores))
    return interval_check(f"{setting}; worst of n = {list(iterations)} at n = {iterations[i]}", exact[i],
                          estimates[i])


def check_shallow_sgd(scale: float) -> Check:
    rng = np.random.default_rng(43)
    family = LinearTaskFamily.from_covariances(8, 4, 10, task_cov=random_spd(8, rng) / 4, input_cov=random_spd(8, rng),
                                               task_mean=rng.standard_normal(8), noise_var=0.25)
    alpha = 0.5 * shallow_maml.optimal_step_size(family)
    direction = rng.standard_normal(8)
    theta0 = family.task_mean + 1.5 * direction / np.linalg.norm(direction)
    eta, iterations = 0.1, [5, 20, 60]
    exact = dynamics.shallow_recursion(family, theta0, alpha, eta, iterations)
    per_seed = sgd_losses(family, shallow_start(family, theta0), InnerLoop(alpha), eta, iterations, 200,
                          int(10 * scale) + 3, int(4000 * scale), seed=44)
    return _worst(f"d=8, K=4, random Σx, Σw, μ, s²=0.25, α=α*/2, ‖θ₀ − μ‖=1.5, η={eta}: plain SGD (batch 200) vs "
                  "the full-batch recursion", exact, per_seed, iterations)


def check_anil_sgd(scale: float) -> Check:
    family, alpha, eta = issue_family(), 0.1, 0.5
    iterations = [10, 20, 40, 200]
    w0 = dynamics.anil_start(family, 6, 0.1)
    exact = dynamics.anil_recursion(family, alpha, w0, eta, iterations)
    per_seed = sgd_losses(family, two_layer_start(family, w0, np.zeros(6)), InnerLoop(alpha, adapt="head"), eta,
                          iterations, 500, int(10 * scale) + 3, int(4000 * scale), seed=45)
    return _worst(f"issue spectrum, h=6, W(0) = 0.1·Uᵀ, η={eta}: plain SGD ANIL (batch 500) vs the full-batch "
                  "recursion", exact, per_seed, iterations)


def check_depth2_sgd(scale: float) -> Check:
    """Width 2 from a default start, a start whose flow stops short of the optimum (at 0.6307, not 0.375): plain SGD
    follows the numerically integrated flow there (t = ηn = 100, most of the way down)."""
    family = LinearTaskFamily.subspace(20, 5, 20, rank=2, seed=0)
    alpha, eta, steps = shallow_maml.optimal_step_size(family), 0.5, 200
    w1, w2 = depth2_starts(family, 2, 1.0, 1, seed=3)
    flow = dynamics.depth2_flow(family, w1, w2, alpha, eta * steps)
    per_seed = sgd_losses(family, two_layer_start(family, w1[0], w2[0]), InnerLoop(alpha), eta, [steps], 500,
                          int(10 * scale) + 3, int(4000 * scale), seed=46)
    return interval_check(f"figure 3's family (d=20, K=5, r=2), width 2, default start (seed 3), η={eta}: plain SGD "
                          f"(batch 500) after {steps} steps vs the numerical flow at t={eta * steps:g} "
                          f"({flow.loss[0]:.4f})", flow.loss[0], Estimate.from_samples(per_seed[0]))


CHECKS = declare("dynamics", {
    "anil_logistic": check_anil_logistic,
    "anil_any_start": check_anil_any_start,
    "anil_limit": check_anil_limit,
    "shallow_slowdown": check_shallow_slowdown,
    "shallow_sgd": check_shallow_sgd,
    "anil_sgd": check_anil_sgd,
    "depth2_sgd": check_depth2_sgd,
})
