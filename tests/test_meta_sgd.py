"""Meta-SGD: theory.meta_sgd (the loss quadratic in the per-parameter step sizes p, the best diagonal) against the
full preconditioned loss, central differences, the best scalar step and the optimal preconditioner, and its twin
(simulations/twins/meta_sgd.py: the literal diagonal inner step, meta-trained p and θ)."""
import math

import numpy as np
import pytest
import torch

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.transforms import diagonal_preconditioner, matrix_preconditioner
from simulations.twins.meta_sgd import estimate_meta_sgd_post_adaptation_loss
from tests.helpers import assert_close, assert_within_ci
from theory import meta_sgd, preconditioned_maml, shallow_maml
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily


def _general(dim: int = 5, support=3, seed: int = 0, noise_var: float = 0.3) -> LinearTaskFamily:
    """Random Σx ≻ 0, a rank-3 Σw, μ ≠ 0."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((dim, dim)), rng.standard_normal((dim, 3))
    return LinearTaskFamily.from_covariances(dim, support, 6, task_cov=b @ b.T, input_cov=a @ a.T / dim + np.eye(dim),
                                             task_mean=rng.standard_normal(dim), noise_var=noise_var)


@pytest.mark.parametrize("support", [1, 3, 40, math.inf])
def test_the_loss_is_the_preconditioned_loss_at_a_diagonal_p(support):
    family = _general(support=support)
    rng = np.random.default_rng(1)
    for _ in range(3):
        p, theta, alpha = rng.standard_normal(5), rng.standard_normal(5), rng.random()
        assert_close(meta_sgd.meta_sgd_post_adaptation_loss(family, p, alpha, theta),
                     preconditioned_maml.preconditioned_post_adaptation_loss(family, theta, np.diag(p), alpha), 1e-12)
        assert_close(meta_sgd.meta_sgd_post_adaptation_loss(family, p, alpha),
                     preconditioned_maml.preconditioned_post_adaptation_loss(family, family.task_mean, np.diag(p),
                                                                             alpha), 1e-12, "θ = μ by default")


@pytest.mark.parametrize("support", [3, math.inf])
def test_the_optimum_is_stationary_and_attained(support):
    family = _general(support=support)
    p_star, best = meta_sgd.optimal_diagonal(family, 0.4), meta_sgd.meta_sgd_best_post_loss(family)
    assert_close(meta_sgd.meta_sgd_post_adaptation_loss(family, p_star, 0.4), best, 1e-12)
    eps, loss = 1e-5, lambda p: meta_sgd.meta_sgd_post_adaptation_loss(family, p, 0.4)
    grad = [(loss(p_star + eps * e) - loss(p_star - eps * e)) / (2 * eps) for e in np.eye(5)]
    assert np.max(np.abs(grad)) < 1e-7, grad
    rng = np.random.default_rng(2)
    assert all(loss(p_star + 0.01 * rng.standard_normal(5)) > best for _ in range(10))


def test_between_the_best_plain_step_and_the_optimal_preconditioner():
    """A rotated rank-2 Σw (random subspace) and a random Σx: strictly between, finite K and K = ∞."""
    for family in (LinearTaskFamily.subspace(20, 5, 10, rank=2, noise_var=0.25, seed=5), _general()):
        diag = meta_sgd.meta_sgd_best_post_loss(family)
        assert preconditioned_maml.preconditioned_best_post_loss(family) < diag * (1 - 1e-3)
        assert diag < shallow_maml.best_post_adaptation_loss(family) * (1 - 1e-3)
    population = _general(support=math.inf)
    assert 0.5 * population.noise_var < meta_sgd.meta_sgd_best_post_loss(population) * (1 - 1e-3)


def test_diagonal_covariances_give_the_optimal_preconditioner():
    rng = np.random.default_rng(3)
    for support in (1, 4, math.inf):
        family = LinearTaskFamily.from_covariances(5, support, 6, task_cov=np.diag([2.0, 1.0, 0.3, 0.0, 0.0]),
                                                   input_cov=np.diag(0.5 + rng.random(5)), noise_var=0.2)
        assert_close(meta_sgd.meta_sgd_best_post_loss(family),
                     preconditioned_maml.preconditioned_best_post_loss(family), 1e-12, f"K={support}")
        assert_close(np.diag(meta_sgd.optimal_diagonal(family, 0.5)),
                     preconditioned_maml.optimal_preconditioner(family, 0.5), 1e-10, f"P* diagonal, K={support}")


def test_isotropic_inputs_closed_form_and_the_scalar_case():
    """Σx = I: L*_diag = ½[tr C − Σ C_ii²/(c₁C_ii + c₂)] + ½s²; a constant diagonal of Σw gives the best scalar step."""
    rng = np.random.default_rng(4)
    b = rng.standard_normal((6, 2))
    family = LinearTaskFamily.from_covariances(6, 4, 6, task_cov=b @ b.T, noise_var=0.4)
    c = np.diag(family.task_cov)
    c1, c2 = 5 / 4, (c.sum() + 0.4) / 4
    assert_close(meta_sgd.meta_sgd_best_post_loss(family), 0.5 * (c.sum() - np.sum(c**2 / (c1 * c + c2)) + 0.4), 1e-12)
    first_row = np.array([1.0, 0.3, -0.1, 0.1, -0.1, 0.3])  # a symmetric circulant: constant diagonal, not vI
    circulant = np.array([np.roll(first_row, i) for i in range(6)])
    for cov in (0.3 * np.eye(6), circulant):
        for noise in (0.0, 0.5):
            family = LinearTaskFamily.from_covariances(6, 3, 6, task_cov=cov, noise_var=noise)
            assert_close(meta_sgd.meta_sgd_best_post_loss(family), shallow_maml.best_post_adaptation_loss(family),
                         1e-12, f"s²={noise}")
    assert preconditioned_maml.preconditioned_best_post_loss(family) < meta_sgd.meta_sgd_best_post_loss(family) - 1e-3


def test_singular_quadratic_uses_the_least_norm_minimiser():
    """K = ∞, Σx = I and Σw with an empty coordinate: A is singular, the gain is exact and p* is finite."""
    family = LinearTaskFamily(3, math.inf, 5, 0.1, task_factor=np.array([[1.0], [0.5], [0.0]]))
    p = meta_sgd.optimal_diagonal(family, 2.0)
    assert np.all(np.isfinite(p)) and p[2] == pytest.approx(0.0, abs=1e-12)
    assert_close(meta_sgd.meta_sgd_best_post_loss(family), 0.05, 1e-12, "½ s²: each task is reached")
    nothing = LinearTaskFamily(3, 4, 5, 0.0, task_factor=np.zeros((3, 1)))  # Σw = 0, s² = 0: A = 0, b = 0
    assert meta_sgd.meta_sgd_best_post_loss(nothing) == 0.0 and not np.any(meta_sgd.optimal_diagonal(nothing))


def test_the_diagonal_transform_is_the_matrix_preconditioner_at_diag_p():
    p, grads = torch.rand(4, dtype=torch.float64), {"w": torch.randn(1, 4, dtype=torch.float64)}
    diag = diagonal_preconditioner("w", 4).with_params({"step_sizes": p})
    full = matrix_preconditioner("w", 4).with_params({"precond": torch.diag(p)})
    assert_close(diag(grads)["w"].numpy(), full(grads)["w"].numpy(), 1e-15)


def test_loss_against_the_literal_step():
    family = _general(dim=4)
    rng = np.random.default_rng(5)
    p, theta = 0.5 + rng.random(4), rng.standard_normal(4)
    assert_within_ci(meta_sgd.meta_sgd_post_adaptation_loss(family, p, 0.2, theta),
                     estimate_meta_sgd_post_adaptation_loss(family, p, 0.2, theta, 40_000, seed=6), "L(p), θ ≠ μ")


@pytest.mark.parametrize("call, parameter", [
    (lambda f: meta_sgd.meta_sgd_post_adaptation_loss(f, np.ones(3), 0.1), "p"),
    (lambda f: meta_sgd.meta_sgd_post_adaptation_loss(f, np.full(5, np.nan), 0.1), "p"),
    (lambda f: meta_sgd.meta_sgd_post_adaptation_loss(f, np.ones(5), math.inf), "alpha"),
    (lambda f: meta_sgd.meta_sgd_post_adaptation_loss(f, np.ones(5), 0.1, np.ones(2)), "theta"),
    (lambda f: meta_sgd.optimal_diagonal(f, 0.0), "alpha"),
    (lambda f: meta_sgd.optimal_diagonal(f, math.nan), "alpha"),
])
def test_bad_input_names_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as info:
        call(_general())
    assert info.value.parameter == parameter


@pytest.mark.parametrize("check", REGISTRY["meta_sgd"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("meta_sgd.") and result.passed, result
