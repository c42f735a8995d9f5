"""Preconditioned inner steps: the loss as a function of P, the optimal P and its gain."""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.preconditioned_maml import estimate_preconditioned_post_adaptation_loss
from tests.helpers import assert_close, assert_within_ci
from theory import preconditioned_maml, shallow_maml
from theory.task_family import LinearTaskFamily


def _family(seed: int = 0) -> LinearTaskFamily:
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 2))
    return LinearTaskFamily.from_covariances(4, 3, 6, task_cov=b @ b.T, input_cov=a @ a.T / 4 + np.eye(4),
                                             task_mean=rng.standard_normal(4), noise_var=0.2)


def test_identity_preconditioner_is_the_plain_step():
    family = _family()
    theta = np.ones(4)
    assert_close(preconditioned_maml.preconditioned_post_adaptation_loss(family, theta, np.eye(4), 0.3),
                 shallow_maml.post_adaptation_loss(family, theta, 0.3), 1e-14)
    assert_close(preconditioned_maml.preconditioned_post_adaptation_loss(family, theta, 2.0, 0.15),
                 shallow_maml.post_adaptation_loss(family, theta, 0.3), 1e-12, "scalar P = 2 at α/2")


def test_optimal_preconditioner_is_a_stationary_minimum():
    family = _family(1)
    p_star = preconditioned_maml.optimal_preconditioner(family, 0.5)
    best = preconditioned_maml.preconditioned_best_post_loss(family)
    at_p_star = preconditioned_maml.preconditioned_post_adaptation_loss(family, family.task_mean, p_star, 0.5)
    assert_close(at_p_star, best, 1e-12)
    rng = np.random.default_rng(2)
    eps = 1e-5
    for _ in range(10):
        e = rng.standard_normal((4, 4))
        up = preconditioned_maml.preconditioned_post_adaptation_loss(family, family.task_mean, p_star + eps * e, 0.5)
        down = preconditioned_maml.preconditioned_post_adaptation_loss(family, family.task_mean, p_star - eps * e, 0.5)
        assert abs(up - down) / (2 * eps) < 1e-6  # zero directional derivative
        assert up > best and down > best
    assert best <= shallow_maml.best_post_adaptation_loss(family) + 1e-12


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(2, 30), st.integers(1, 10), st.data())
def test_isotropic_subspace_closed_forms(dim, support, data):
    """Σx = I, Σw = UUᵀ (rank r), s² = 0: L* = ½ r(r+1)/(K+r+1); gain = (d+1)(K+r+1)/((r+1)(K+d+1))."""
    rank = data.draw(st.integers(1, dim))
    family = LinearTaskFamily.subspace(dim, support, rank=rank, seed=dim)
    best = preconditioned_maml.preconditioned_best_post_loss(family)
    assert_close(best, 0.5 * rank * (rank + 1) / (support + rank + 1), 1e-10)
    expected_gain = (dim + 1) * (support + rank + 1) / ((rank + 1) * (support + dim + 1))
    assert_close(preconditioned_maml.preconditioner_gain(dim, support, rank), expected_gain, 1e-10)
    assert_close(shallow_maml.best_post_adaptation_loss(family) / best, expected_gain, 1e-10)


def test_gain_is_one_for_full_rank_tasks_even_with_noise():
    assert_close(preconditioned_maml.preconditioner_gain(20, 5, 20, noise_var=0.7), 1.0, 1e-12)
    assert preconditioned_maml.preconditioner_gain(20, 5, 2, noise_var=0.7) > 1.5


def test_loss_against_the_literal_preconditioned_step():
    family = _family(3)
    rng = np.random.default_rng(4)
    theta, p = rng.standard_normal(4), 0.4 * np.eye(4) + 0.1 * rng.standard_normal((4, 4))
    assert_within_ci(preconditioned_maml.preconditioned_post_adaptation_loss(family, theta, p, 0.7),
                     estimate_preconditioned_post_adaptation_loss(family, theta, p, 0.7, 50_000, seed=5), "L(P)")


@pytest.mark.parametrize("check", REGISTRY["preconditioned_maml"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("preconditioned_maml.") and result.passed, result


def test_infinite_support_closed_forms():
    """K = ∞: the loss is the K → ∞ limit; the optimal P (S^{-1/2} Π S^{-1/2}) reaches ½ s²; the gain is 1."""
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 2))
    common = {"dim": 4, "query": 6, "task_cov": b @ b.T, "input_cov": a @ a.T / 4 + np.eye(4),
              "task_mean": rng.standard_normal(4), "noise_var": 0.2}
    infinite = LinearTaskFamily.from_covariances(support=math.inf, **common)
    large = LinearTaskFamily.from_covariances(support=10**8, **common)
    theta, p = rng.standard_normal(4), rng.standard_normal((4, 4))
    at_inf = preconditioned_maml.preconditioned_post_adaptation_loss(infinite, theta, p, 0.3)
    assert math.isfinite(at_inf)
    assert_close(at_inf, preconditioned_maml.preconditioned_post_adaptation_loss(large, theta, p, 0.3), 1e-6)
    p_star = preconditioned_maml.optimal_preconditioner(infinite, 0.5)
    best = preconditioned_maml.preconditioned_best_post_loss(infinite)
    assert best == 0.1
    reached = preconditioned_maml.preconditioned_post_adaptation_loss(infinite, infinite.task_mean, p_star, 0.5)
    assert_close(reached, best, 1e-10)
    assert_close(preconditioned_maml.preconditioned_best_post_loss(large), best, 1e-5)  # O(1/K)
    assert_close(preconditioned_maml.preconditioner_gain(10, math.inf, 3, noise_var=0.5), 1.0, 1e-12)
