"""Shallow-model MAML: closed forms against the literal inner loop, and their optima."""
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.shallow_maml import estimate_post_adaptation_loss, estimate_pre_adaptation_loss
from tests.helpers import assert_close, assert_within_ci
from theory import shallow_maml
from theory.ground.errors import NoClosedForm
from theory.task_family import LinearTaskFamily
from theory.wishart_words import MAX_WORD_STEPS


def test_symbolic_update_is_the_gradient_step():
    derived, closed = shallow_maml.one_step_update_symbolic(3, 2)
    assert sp.simplify(derived - closed) == sp.zeros(3, 1)


def test_isotropic_one_step_formula():
    """Σx = I, s² = 0: L_post = ½ (1 − 2α + α²(K+d+1)/K) (‖θ−μ‖² + tr Σw)."""
    family = LinearTaskFamily.subspace(9, 4, rank=3, mean_norm=1.0, seed=3)
    theta = np.full(9, 0.2)
    c = np.sum((theta - family.task_mean) ** 2) + 3
    for alpha in (0.0, 0.1, 0.5):
        expected = 0.5 * (1 - 2 * alpha + alpha**2 * (4 + 9 + 1) / 4) * c
        assert_close(shallow_maml.post_adaptation_loss(family, theta, alpha), expected, 1e-12, f"α={alpha}")
    assert_close(shallow_maml.optimal_step_size(family), 4 / 14, 1e-12, "α* = K/(K+d+1)")
    ratio = shallow_maml.best_post_adaptation_loss(family) / shallow_maml.pre_adaptation_loss(family, family.task_mean)
    assert_close(ratio, 10 / 14, 1e-12, "(d+1)/(K+d+1)")


@settings(max_examples=30, deadline=None, derandomize=True)
@given(st.integers(1, 12), st.integers(1, 10), st.floats(0.0, 1.0), st.floats(0.0, 2.0), st.integers(0, 999))
def test_k_step_expression_at_one_step_equals_the_general_form(dim, support, alpha, noise, seed):
    """The sympy k-step expression (recursion moments) at k = 1 is the Wishart-sandwich one-step loss (identity)."""
    family = LinearTaskFamily.subspace(dim, support, noise_var=noise, mean_norm=1.0, seed=seed)
    theta = np.random.default_rng(seed).standard_normal(dim)
    expr = shallow_maml.isotropic_k_step_expression(1)
    values = {sp.Symbol("alpha"): alpha, sp.Symbol("K", positive=True, integer=True): support,
              sp.Symbol("d", positive=True, integer=True): dim, sp.Symbol("s2"): noise,
              sp.Symbol("R"): np.trace(family.error_second_moment(theta))}
    assert_close(float(expr.subs(values)), shallow_maml.post_adaptation_loss(family, theta, alpha), 1e-10)


def test_zero_steps_and_zero_step_size_give_the_pre_adaptation_loss():
    family = LinearTaskFamily.subspace(5, 3, noise_var=0.2, mean_norm=1.0)
    theta = np.ones(5)
    pre = shallow_maml.pre_adaptation_loss(family, theta)
    assert_close(shallow_maml.post_adaptation_loss(family, theta, 0.3, steps=0), pre, 1e-14)
    for k in (1, 2, 3, 10, 50):
        assert_close(shallow_maml.post_adaptation_loss(family, theta, 0.0, steps=k), pre, 1e-12, f"k={k}")


def test_optimal_init_and_step_are_minimisers():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((4, 4))
    family = LinearTaskFamily.from_covariances(4, 3, 5, task_cov=a @ a.T, input_cov=np.diag([1, 2, 0.5, 1.5]),
                                               task_mean=rng.standard_normal(4), noise_var=0.4)
    theta, alpha = shallow_maml.maml_optimal_init(family), shallow_maml.optimal_step_size(family)
    best = shallow_maml.post_adaptation_loss(family, theta, alpha)
    for _ in range(20):
        assert shallow_maml.post_adaptation_loss(family, theta + 0.1 * rng.standard_normal(4), alpha) > best
    for factor in (0.9, 1.1):
        assert shallow_maml.post_adaptation_loss(family, theta, alpha * factor) > best


def test_k_step_optimal_alpha_is_a_minimiser():
    family = LinearTaskFamily.subspace(20, 5, rank=3, noise_var=0.1)
    alpha = shallow_maml.optimal_step_size(family, 2)
    best = shallow_maml.best_post_adaptation_loss(family, 2)
    assert best < shallow_maml.best_post_adaptation_loss(family, 1)  # a second step on the same support helps
    for factor in (0.95, 1.05):
        assert shallow_maml.post_adaptation_loss(family, family.task_mean, alpha * factor, 2) > best


def test_no_closed_form_where_only_simulation_answers():
    """Anisotropic inputs, finite K: exact up to MAX_WORD_STEPS steps (theory.wishart_words), then simulation only."""
    family = LinearTaskFamily.from_covariances(3, 2, 2, task_cov=np.eye(3), input_cov=np.diag([1.0, 2.0, 3.0]))
    beyond = MAX_WORD_STEPS + 1
    assert math.isfinite(shallow_maml.post_adaptation_loss(family, np.zeros(3), 0.1, steps=2))
    with pytest.raises(NoClosedForm, match="only simulation answers"):
        shallow_maml.post_adaptation_loss(family, np.zeros(3), 0.1, steps=beyond)
    with pytest.raises(NoClosedForm, match="only simulation answers"):
        shallow_maml.optimal_step_size(family, beyond)


@pytest.mark.parametrize("steps", [2, 3])
def test_exact_rational_path_equals_the_sympy_expression(steps):
    """The integer-Horner evaluation and the sympy polynomial of the same moments agree (float64 identity)."""
    family = LinearTaskFamily.subspace(7, 3, noise_var=0.3, mean_norm=1.0, seed=1)
    theta = np.full(7, 0.1)
    values = {sp.Symbol("K", positive=True, integer=True): 3, sp.Symbol("d", positive=True, integer=True): 7,
              sp.Symbol("s2"): 0.3, sp.Symbol("R"): np.trace(family.error_second_moment(theta))}
    for alpha in (0.05, 0.2, 0.6):
        expr = shallow_maml.isotropic_k_step_expression(steps).subs({**values, sp.Symbol("alpha"): alpha})
        assert_close(shallow_maml.post_adaptation_loss(family, theta, alpha, steps), float(expr), 1e-12)


def test_fifty_steps_optimal_alpha_is_a_global_minimiser():
    family = LinearTaskFamily.subspace(20, 10, rank=5, noise_var=0.1)
    alpha = shallow_maml.optimal_step_size(family, 50)
    best = shallow_maml.best_post_adaptation_loss(family, 50)
    assert math.isfinite(best) and best < shallow_maml.best_post_adaptation_loss(family, 1)
    for factor in (1 - 1e-6, 1 + 1e-6, 0.5, 0.9, 1.1, 2.0):
        assert shallow_maml.post_adaptation_loss(family, family.task_mean, alpha * factor, 50) > best
    grid = np.linspace(0.005, 2 * shallow_maml.optimal_step_size(family, 1), 200)
    assert min(shallow_maml.post_adaptation_loss(family, family.task_mean, a, 50) for a in grid) >= best


def test_infinite_support_is_the_limit_of_large_support():
    """K = 10⁶ against K = ∞: the finite-K exact loss (Σx = I, k = 5) and the one-step form (any Σx) converge."""
    iso = {"dim": 6, "query": 5, "noise_var": 0.3, "mean_norm": 1.0, "rank": 4, "seed": 2}
    theta = np.full(6, 0.2)
    limit = shallow_maml.post_adaptation_loss(LinearTaskFamily.subspace(support=math.inf, **iso), theta, 0.4, 5)
    gaps = [abs(shallow_maml.post_adaptation_loss(LinearTaskFamily.subspace(support=k, **iso), theta, 0.4, 5) - limit)
            for k in (10**3, 10**6)]
    assert gaps[1] < 1e-4 * limit and gaps[1] < gaps[0] / 100  # the gap is O(d/K)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 4))
    general = {"dim": 4, "query": 5, "task_cov": a @ a.T, "input_cov": a.T @ a / 4 + np.eye(4),
               "task_mean": rng.standard_normal(4), "noise_var": 0.2}
    infinite = LinearTaskFamily.from_covariances(support=math.inf, **general)
    large = LinearTaskFamily.from_covariances(support=10**7, **general)
    for alpha in (0.05, 0.2):
        at_inf = shallow_maml.post_adaptation_loss(infinite, theta[:4], alpha)
        assert_close(at_inf, shallow_maml.post_adaptation_loss(large, theta[:4], alpha), 1e-5)
        a0, a1, a2 = shallow_maml.quadratic_coefficients(infinite, theta[:4])  # the 1/K terms dropped
        assert_close(at_inf, 0.5 * (a0 - 2 * alpha * a1 + alpha**2 * a2 + 0.2), 1e-12)
    assert_close(shallow_maml.optimal_step_size(infinite, 1), shallow_maml.optimal_step_size(large, 1), 1e-6)


def test_infinite_support_optimal_step():
    """K = ∞: α* = 1 for Σx = I (one step reaches w_τ); for any Σx the convex loss's minimiser."""
    family = LinearTaskFamily.subspace(5, math.inf, rank=2, noise_var=0.1)
    assert_close(shallow_maml.optimal_step_size(family, 7), 1.0, 1e-12)
    assert_close(shallow_maml.best_post_adaptation_loss(family, 7), 0.05, 1e-12)
    general = LinearTaskFamily.from_covariances(3, math.inf, 5, task_cov=np.eye(3), input_cov=np.diag([0.5, 1.0, 3.0]))
    for steps in (1, 2, 10):
        alpha = shallow_maml.optimal_step_size(general, steps)
        best = shallow_maml.best_post_adaptation_loss(general, steps)
        for factor in (0.99, 1.01):
            assert shallow_maml.post_adaptation_loss(general, np.zeros(3), alpha * factor, steps) > best


def test_many_step_standard_error_shrinks_with_samples():
    """16× the tasks: the standard error of the k = 10 estimate shrinks about 4× (a light-tailed setting)."""
    family = LinearTaskFamily.subspace(6, 6, 10, rank=3, noise_var=0.2, mean_norm=1.0, seed=7)
    small = estimate_post_adaptation_loss(family, family.task_mean, 0.1, 10, 5_000, seed=1)
    large = estimate_post_adaptation_loss(family, family.task_mean, 0.1, 10, 80_000, seed=2)
    assert 3.2 < small.stderr / large.stderr < 4.8, (small, large)


def test_pre_and_post_losses_against_the_literal_inner_loop():
    rng = np.random.default_rng(7)
    a = rng.standard_normal((5, 5))
    family = LinearTaskFamily.from_covariances(5, 3, 8, task_cov=a @ a.T / 5, input_cov=np.diag([1, 2, .5, 1, 3.]),
                                               task_mean=rng.standard_normal(5), noise_var=0.3)
    theta = rng.standard_normal(5)
    assert_within_ci(shallow_maml.pre_adaptation_loss(family, theta),
                     estimate_pre_adaptation_loss(family, theta, 40_000, seed=1), "pre")
    assert_within_ci(shallow_maml.post_adaptation_loss(family, theta, 0.1),
                     estimate_post_adaptation_loss(family, theta, 0.1, 1, 40_000, seed=2), "post, k=1")


@pytest.mark.parametrize("steps", [2, 3])
def test_k_step_loss_against_the_literal_inner_loop(steps):
    family = LinearTaskFamily.subspace(6, 4, 8, rank=2, noise_var=0.3, mean_norm=0.5, seed=4)
    theta = np.full(6, 0.3)
    assert_within_ci(shallow_maml.post_adaptation_loss(family, theta, 0.2, steps),
                     estimate_post_adaptation_loss(family, theta, 0.2, steps, 40_000, seed=steps), f"k={steps}")


@pytest.mark.parametrize("check", REGISTRY["shallow_maml"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("shallow_maml.") and result.passed, result
