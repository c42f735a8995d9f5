"""verify checks of theory.ridge_maml: the ridge (iMAML) loss given the support inputs against whole sampled tasks,
the exact least-squares case, the posterior-mean identity given X, the best scalar λ against the Bayes floor, and
meta-trained iMAML (θ and λ through the exact ridge solve) reaching the floor."""
from __future__ import annotations

import math

import numpy as np

from simulations.checks.fixtures import general_family, random_spd
from simulations.checks.rules import Check, declare, identity_check, interval_check, two_estimate_check
from simulations.statistics import Estimate
from simulations.twins.ridge_maml import estimate_meta_trained_imaml_loss, estimate_ridge_post_adaptation_loss
from theory import bayes_floor, ridge_maml
from theory.task_family import LinearTaskFamily

# the family: d = 20, K = 5, Σw = I/20, s² = 0.25 (λ* = s²/(Kv) = 1); μ ≠ 0 so θ has to move too
ISOTROPIC = {"dim": 20, "support": 5, "query": 10, "rank": 20, "task_scale": math.sqrt(1 / 20), "noise_var": 0.25}
# Adam 0.02 with cosine decay, meta-batch 128: 300 steps left the exact loss at the trained (θ, λ) 0.05% above the
# floor (λ = 0.99), far inside the evaluation interval
META_ITERATIONS = 500
EVAL_TASKS = 50_000


def check_post_loss(scale: float) -> Check:
    family, theta = general_family()
    penalty = random_spd(6, np.random.default_rng(51))
    theory = ridge_maml.ridge_post_adaptation_loss(family, theta, penalty, seed=52, draws=int(100_000 * scale))
    est = estimate_ridge_post_adaptation_loss(family, theta, penalty, int(100_000 * scale), seed=53)
    return two_estimate_check("d=6, K=4, random Σx, Σw, μ, θ, s²=0.25, random SPD Λ: E_X of the loss exact given X "
                              "vs whole tasks drawn", theory.value, theory.stderr, theory.method, est)


def check_least_squares(scale: float) -> Check:
    rng = np.random.default_rng(54)
    family = LinearTaskFamily.from_covariances(4, 12, 10, task_cov=random_spd(4, rng), input_cov=random_spd(4, rng),
                                               task_mean=rng.standard_normal(4), noise_var=0.5)
    theory = ridge_maml.ridge_post_adaptation_loss(family, np.zeros(4), 0.0)
    est = estimate_ridge_post_adaptation_loss(family, np.zeros(4), 0.0, int(100_000 * scale), seed=55)
    return interval_check(f"d=4, K=12, random Σx, Σw, s²=0.5, Λ=0 (least squares): ½s²(K−1)/(K−d−1) "
                          f"({theory.method})", theory.value, est)


def check_posterior_given_x(scale: float) -> Check:
    rng = np.random.default_rng(56)
    d, k, s2 = 5, 3, 0.3
    sigma_w, sigma_x = random_spd(d, rng), random_spd(d, rng)
    family = LinearTaskFamily.from_covariances(d, k, 10, task_cov=sigma_w, input_cov=sigma_x,
                                               task_mean=rng.standard_normal(d), noise_var=s2)
    x = rng.standard_normal((8, k, d)) @ family.input_factor.T  # 8 support sets, (8, K, d)
    ridge = ridge_maml.ridge_loss_given_inputs(family, None, ridge_maml.posterior_mean_penalty(family), x)
    gram = x @ sigma_w @ x.transpose(0, 2, 1) + s2 * np.eye(k)  # XΣwXᵀ + s²I, (8, K, K)
    post = sigma_w - sigma_w @ x.transpose(0, 2, 1) @ np.linalg.solve(gram, x @ sigma_w)  # Σ_post, (8, d, d)
    bayes = 0.5 * (np.trace(sigma_x @ post, axis1=1, axis2=2) + s2)
    return identity_check("d=5, K=3, random Σx, Σw ≻ 0, s²=0.3, 8 random X: ℓ(X) at Λ=(s²/K)Σw⁻¹, θ=μ vs "
                          "½(tr(Σx Σ_post(X)) + s²)", ridge, bayes)


def check_best_scalar_is_bayes(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**ISOTROPIC, seed=5)
    best = ridge_maml.best_scalar_ridge(family, seed=57, draws=int(50_000 * scale))
    floor = bayes_floor.bayes_optimal_loss(family, n_samples=int(100_000 * scale), seed=58)
    est = Estimate(best.value, best.stderr, int(50_000 * scale))
    return two_estimate_check(f"d=20, K=5, Σw=I/20, s²=0.25: best scalar λ={best.lam:.4f} (s²/(Kv)=1; {best.method}) "
                              f"vs the Bayes floor", floor.value, floor.stderr, floor.method, est)


def check_meta_trained(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**ISOTROPIC, mean_norm=1.0, seed=5)
    iterations = int(META_ITERATIONS * scale) + 100
    est, result = estimate_meta_trained_imaml_loss(family, iterations, int(EVAL_TASKS * scale), seed=59)
    floor = bayes_floor.bayes_optimal_loss(family, n_samples=int(100_000 * scale), seed=60)
    return two_estimate_check(f"d=20, K=5, Σw=I/20, s²=0.25, ‖μ‖=1: iMAML meta-trains θ (from 0) and λ "
                              f"({iterations} Adam steps through the exact solve; λ={result.lam[0]:.3f}) vs the "
                              f"Bayes floor", floor.value, floor.stderr, floor.method, est)


def check_meta_trained_diagonal(scale: float) -> Check:
    family = LinearTaskFamily.from_covariances(4, 3, 10, task_cov=np.diag([2.0, 1.0, 0.2, 0.05]), noise_var=0.3)
    iterations = int(META_ITERATIONS * scale) + 100
    est, result = estimate_meta_trained_imaml_loss(family, iterations, int(EVAL_TASKS * scale), seed=61,
                                                   diagonal=True, meta_lr=0.05)
    floor = bayes_floor.bayes_optimal_loss(family, n_samples=int(100_000 * scale), seed=62)
    lam = ", ".join(f"{v:.3g}" for v in result.lam)
    return two_estimate_check(f"d=4, K=3, Σw=diag(2, 1, 0.2, 0.05), s²=0.3: iMAML meta-trains θ and a diagonal Λ "
                              f"({iterations} Adam steps; λ=({lam}), (s²/K)/v_i=(0.05, 0.1, 0.5, 2)) vs the Bayes "
                              f"floor", floor.value, floor.stderr, floor.method, est)


CHECKS = declare("ridge_maml", {
    "post_loss": check_post_loss,
    "least_squares": check_least_squares,
    "posterior_given_x": check_posterior_given_x,
    "best_scalar_is_bayes": check_best_scalar_is_bayes,
    "meta_trained": check_meta_trained,
    "meta_trained_diagonal": check_meta_trained_diagonal,
})
