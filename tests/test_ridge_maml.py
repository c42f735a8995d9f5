"""iMAML / biased regularisation: theory.ridge_maml (the loss exact given the support inputs, its exact cases, the
posterior mean, the best scalar λ, the Marchenko–Pastur approximation) against whole sampled tasks, the Bayes
floor and autograd (simulations/twins/ridge_maml.py: the ridge inner problem solved exactly, iMAML meta-trained)."""
import math

import numpy as np
import pytest
import torch

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.statistics import Estimate
from simulations.tasks import sample_regression_tasks
from simulations.twins.ridge_maml import estimate_ridge_post_adaptation_loss, query_losses, ridge_adapt
from tests.helpers import assert_close, assert_within_ci
from theory import bayes_floor, ridge_maml, shallow_maml
from theory.ground.errors import ParameterError
from theory.ground.statistics import Z_CHECK
from theory.task_family import LinearTaskFamily


def _general(dim: int = 5, support=3, seed: int = 0, noise_var: float = 0.3) -> LinearTaskFamily:
    """Random Σx ≻ 0, Σw ≻ 0, μ ≠ 0."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((dim, dim)), rng.standard_normal((dim, dim))
    return LinearTaskFamily.from_covariances(dim, support, 6, task_cov=b @ b.T / dim + 0.2 * np.eye(dim),
                                             input_cov=a @ a.T / dim + np.eye(dim),
                                             task_mean=rng.standard_normal(dim), noise_var=noise_var)


def _isotropic(dim=20, support=5, v=1 / 20, noise_var=0.25, mean_norm=0.0) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(dim, support, 10, rank=dim, task_scale=math.sqrt(v), noise_var=noise_var,
                                     mean_norm=mean_norm, seed=5)


def _two_estimates_agree(a: float, se_a: float, b: float, se_b: float, what: str) -> None:
    assert abs(a - b) <= Z_CHECK * math.hypot(se_a, se_b), f"{what}: {a:.6g} ± {se_a:.2g} vs {b:.6g} ± {se_b:.2g}"


def test_the_loss_given_x_averages_over_tasks_and_noise():
    """ℓ(X) for one fixed X against w_τ and ε drawn (the query loss ½(φ − w)ᵀΣx(φ − w) + ½s² exact in x_q)."""
    family = _general(dim=4, support=3)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)) @ family.input_factor.T  # (K, d)
    theta, lam = rng.standard_normal(4), np.diag(0.3 + rng.random(4))
    n = 200_000
    w = family.task_mean + rng.standard_normal((n, family.rank)) @ family.task_factor.T  # (n, d)
    y = w @ x.T + math.sqrt(family.noise_var) * rng.standard_normal((n, 3))  # (n, K)
    phi = np.linalg.solve(x.T @ x / 3 + lam, (y @ x / 3 + lam @ theta).T).T  # (n, d)
    err = phi - w
    losses = 0.5 * (np.einsum("ni,ij,nj->n", err, family.input_cov, err) + family.noise_var)
    assert_within_ci(float(ridge_maml.ridge_loss_given_inputs(family, theta, lam, x)),
                     Estimate.from_samples(torch.as_tensor(losses)), "ℓ(X), one X")


def test_monte_carlo_against_whole_sampled_tasks():
    family = _general(dim=4, support=3)
    theta = np.linspace(-1, 1, 4)
    theory = ridge_maml.ridge_post_adaptation_loss(family, theta, 0.7, seed=2, draws=40_000)
    assert theory.method == ridge_maml.MONTE_CARLO and theory.ci95 > 0
    est = estimate_ridge_post_adaptation_loss(family, theta, 0.7, 40_000, seed=3)
    _two_estimates_agree(theory.value, theory.stderr, est.mean, est.stderr, "scalar λ, θ ≠ μ")


def test_population_limit_is_the_given_x_loss_at_s_hat_equal_sigma_x():
    """K = ∞ (exact) is ℓ(X) at an X with Ŝ = Σx exactly and no noise; Λ → 0 gives ½s², Λ → ∞ the loss at θ."""
    family = _general(noise_var=0.0)
    population = LinearTaskFamily(5, math.inf, 6, 0.0, input_factor=family.input_factor,
                                  task_mean=family.task_mean, task_factor=family.task_factor)
    theta, lam = np.ones(5), np.diag([0.2, 0.5, 1.0, 2.0, 3.0])
    x = math.sqrt(5) * family.input_factor.T  # (K = d, d): XᵀX/K = AAᵀ = Σx
    exact = ridge_maml.ridge_post_adaptation_loss(population, theta, lam)
    assert exact.method == "exact" and exact.ci95 == 0
    assert_close(exact.value, float(ridge_maml.ridge_loss_given_inputs(family, theta, lam, x)), 1e-12)
    noisy = LinearTaskFamily(5, math.inf, 6, 0.4, input_factor=family.input_factor, task_factor=family.task_factor)
    assert_close(ridge_maml.ridge_post_adaptation_loss(noisy, theta, 1e-9).value, 0.2, 1e-7, "Λ → 0")
    assert_close(ridge_maml.ridge_post_adaptation_loss(noisy, theta, 1e9).value,
                 shallow_maml.pre_adaptation_loss(noisy, theta), 1e-7, "Λ → ∞: φ = θ")


def test_least_squares_is_exact_and_matches_the_monte_carlo():
    family = _general(dim=4, support=10, noise_var=0.5)
    exact = ridge_maml.ridge_post_adaptation_loss(family, np.zeros(4), 0.0)
    assert exact.method == "exact"
    assert_close(exact.value, 0.5 * 0.5 * 9 / 5, 1e-14)
    near = ridge_maml.ridge_post_adaptation_loss(family, np.zeros(4), 1e-9, seed=4, draws=100_000)
    assert near.method == ridge_maml.MONTE_CARLO
    assert abs(near.value - exact.value) <= Z_CHECK * near.stderr, (near, exact)


def test_posterior_mean_penalty_gives_the_bayes_floor():
    family = _general()
    penalty = ridge_maml.posterior_mean_penalty(family)
    result = ridge_maml.ridge_post_adaptation_loss(family, None, penalty, seed=5, draws=20_000)
    floor = bayes_floor.bayes_optimal_loss(family, n_samples=20_000, seed=5)
    assert result.value == floor.value and result.method == ridge_maml.MONTE_CARLO and "posterior mean" in result.note
    off = ridge_maml.ridge_post_adaptation_loss(family, None, penalty * (1 + 1e-6), seed=6, draws=20_000)
    _two_estimates_agree(off.value, off.stderr, floor.value, floor.stderr, "general route at Λ(1 + 1e-6)")
    one = LinearTaskFamily(1, 4, 5, 0.5, task_factor=np.array([[0.8]]))  # rank 1: the floor by quadrature
    exact = ridge_maml.ridge_post_adaptation_loss(one, None, 0.5 / 4 / 0.64)
    assert exact.method == "quadrature" and exact.ci95 == 0
    near = ridge_maml.ridge_post_adaptation_loss(one, None, 0.5 / 4 / 0.64 * (1 + 1e-6), draws=100_000)
    assert abs(near.value - exact.value) <= Z_CHECK * near.stderr


def test_best_scalar_reaches_the_floor_for_isotropic_tasks_and_not_otherwise():
    """The issue's setting, d = 20, K = 5, Σw = I/20, s² = 0.25: λ* = s²/(Kv) = 1 reaches the floor (0.5305 there),
    below the best plain step (0.5444); an anisotropic Σw keeps the best scalar above the floor."""
    family = _isotropic()
    best = ridge_maml.best_scalar_ridge(family, seed=7, draws=20_000)
    assert best.method == "numerical" and abs(best.lam - 1.0) < 0.02, best.lam
    floor = bayes_floor.bayes_optimal_loss(family, n_samples=40_000, seed=8)
    _two_estimates_agree(best.value, best.stderr, floor.value, floor.stderr, "best scalar λ vs floor")
    assert best.value + 3 * best.ci95 < shallow_maml.best_post_adaptation_loss(family)
    anisotropic = LinearTaskFamily.from_covariances(6, 3, 6, task_cov=np.diag([2.0, 1.0, 0.5, 0.1, 0.05, 0.01]),
                                                    noise_var=0.3)
    scalar = ridge_maml.best_scalar_ridge(anisotropic, seed=9, draws=20_000)
    floor = ridge_maml.best_ridge_loss(anisotropic, seed=10, draws=40_000)
    assert "attained" in floor.note
    assert scalar.value - floor.value > Z_CHECK * math.hypot(scalar.stderr, floor.stderr), (scalar, floor)


def test_singular_task_covariance_has_no_finite_posterior_penalty():
    family = LinearTaskFamily.subspace(6, 3, 6, rank=2, noise_var=0.2, seed=1)
    with pytest.raises(ParameterError) as info:
        ridge_maml.posterior_mean_penalty(family)
    assert info.value.parameter == "family"
    assert "infimum" in ridge_maml.best_ridge_loss(family, draws=1000).note


def test_marchenko_pastur_approximation_approaches_the_monte_carlo():
    """Σx = I, Λ = λI, Σw = vI, d/K = 3 fixed: the gap to the (exact given X) Monte-Carlo shrinks like 1/d."""
    gaps = []
    for dim, support in ((15, 5), (60, 20)):
        family = _isotropic(dim, support, v=1 / dim)
        mc = ridge_maml.ridge_post_adaptation_loss(family, None, 0.5, seed=11, draws=4000)
        approx = ridge_maml.marchenko_pastur_ridge_loss(dim, support, 0.5, 1 / dim, 0.25)
        assert approx.method.startswith("approximation")
        gaps.append((abs(mc.value - approx.value), mc.ci95))
    assert gaps[1][0] + gaps[1][1] < 0.5 * (gaps[0][0] - gaps[0][1]), gaps
    assert gaps[1][0] < 2e-3 * 0.5


def test_the_twin_solves_the_ridge_problem_and_its_gradient_is_the_implicit_one():
    family = _general(dim=4, support=3)
    batch = sample_regression_tasks(family, 3, 12)
    theta = torch.randn(4, dtype=torch.float64, requires_grad=True)
    penalty = torch.diag(torch.tensor([0.3, 0.6, 1.0, 2.0], dtype=torch.float64))
    phi = ridge_adapt(theta, penalty, batch)  # (T, d)
    for t in range(3):
        p = phi[t].detach().clone().requires_grad_(True)
        value = 0.5 * ((batch.x_support[t] @ p - batch.y_support[t]) ** 2).mean() + 0.5 * (p - theta.detach()) @ \
            penalty @ (p - theta.detach())
        (grad,) = torch.autograd.grad(value, p)
        assert grad.abs().max() < 1e-12, grad  # φ is the argmin
    loss = query_losses(phi, batch).sum()
    (auto,) = torch.autograd.grad(loss, theta)
    x = batch.x_support
    gram = x.transpose(1, 2) @ x / 3 + penalty  # (T, d, d)
    g_phi = torch.einsum("tqd,tq->td", batch.x_query, torch.einsum("tqd,td->tq", batch.x_query, phi.detach())
                         - batch.y_query) / batch.x_query.shape[1]  # ∇_φ of the query loss, (T, d)
    implicit = (penalty @ torch.linalg.solve(gram, g_phi).T).sum(1)  # Σ_τ Λ(Ŝ + Λ)⁻¹ ∇_φ L_q
    assert_close(auto.numpy(), implicit.numpy(), 1e-12, "autograd through the solve vs the implicit-function form")


@pytest.mark.parametrize("call, parameter", [
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, -0.1), "lam"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, 0.0), "lam"),  # K = 3 ≤ d + 1
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, np.diag([1.0, 1, 1, 1, 0])), "lam"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, np.triu(np.ones((5, 5)))), "lam"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, np.ones(3)), "lam"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, math.nan), "lam"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, np.ones(2), 1.0), "theta"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, 1.0, draws=1), "draws"),
    (lambda f: ridge_maml.ridge_post_adaptation_loss(f, None, 1.0, seed=-1), "seed"),
    (lambda f: ridge_maml.ridge_loss_given_inputs(f, None, 1.0, np.ones((3, 4))), "x"),
    (lambda f: ridge_maml.best_scalar_ridge(f, draws=0), "draws"),
    (lambda f: ridge_maml.marchenko_pastur_ridge_loss(5, 3, 0.0, 1.0, 0.1), "lam"),
    (lambda f: ridge_maml.marchenko_pastur_ridge_loss(0, 3, 1.0, 1.0, 0.1), "dim"),
    (lambda f: ridge_maml.marchenko_pastur_ridge_loss(5, 3, 1.0, -1.0, 0.1), "task_var"),
])
def test_bad_input_names_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as info:
        call(_general())
    assert info.value.parameter == parameter


@pytest.mark.parametrize("check", REGISTRY["ridge_maml"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("ridge_maml.") and result.passed, result


def test_explore_reports_imaml_at_the_bayes_floor_for_isotropic_tasks(capsys):
    """Issue 18's setting through the command line: Σw = I/20 (a full-rank 'subspace' of variance 1/20), d = 20,
    K = 5, s² = 0.25: iMAML's best scalar λ meets the Bayes floor within their intervals, below the best plain step."""
    import json

    import paper_repro

    assert paper_repro.main(["explore", "--dim", "20", "--support", "5", "--rank", "20", "--task-var", "0.05",
                             "--noise", "0.25", "--width", "2", "--theory-only", "--json"]) == 0
    t = json.loads(capsys.readouterr().out)["theory"]
    gap = abs(t["implicit_best_post_loss"] - t["bayes_optimal_loss"])
    assert gap <= t["implicit_best_post_loss_ci95"] + t["bayes_optimal_loss_ci95"]
    assert t["implicit_best_lambda"] == pytest.approx(0.25 / (5 * 0.05), rel=0.02)
    assert t["implicit_best_post_loss"] < t["shallow_best_post_loss"] - 0.01


@pytest.mark.parametrize(("dim", "support", "noise", "scale"),
                         [(12, 5, 0.25, 1.0), (6, 9, 0.1, 2.5), (20, 5, 0.0, 1.0)])
def test_isotropic_best_scalar_ridge_is_the_dense_monte_carlo_at_its_lambda(dim, support, noise, scale):
    """Σx = βI: the estimate over Ŝ's eigenvalues alone (rotation averaged out) against the dense Monte-Carlo over X at
    the λ it finds, through both intervals (Z_CHECK on the combined standard error); an anisotropic Σw of trace t."""
    rng = np.random.default_rng(dim)
    cov = rng.standard_normal((dim, 3))
    cov = cov @ cov.T / 3
    family = LinearTaskFamily.from_covariances(dim, support, 20, task_cov=cov, input_cov=scale * np.eye(dim),
                                               noise_var=noise)
    fast = ridge_maml.isotropic_best_scalar_ridge(dim, support, float(np.trace(cov)), noise, scale, seed=3,
                                                  draws=20_000)
    slow = ridge_maml.ridge_post_adaptation_loss(family, lam=fast.lam, seed=4, draws=20_000)
    margin = Z_CHECK * math.hypot(fast.stderr, slow.stderr) + 1e-12 * slow.value
    assert abs(fast.value - slow.value) <= margin, (fast, slow)
    assert fast.stderr <= slow.stderr + 1e-15  # the rotation is averaged out exactly: never a wider interval


def test_isotropic_best_scalar_ridge_refuses_what_it_cannot_draw():
    with pytest.raises(ParameterError, match="support"):
        ridge_maml.isotropic_best_scalar_ridge(1000, 1000, 1.0, 0.1, draws=10)
    with pytest.raises(ParameterError, match="input_scale"):
        ridge_maml.isotropic_best_scalar_ridge(10, 5, 1.0, 0.1, input_scale=0.0)
