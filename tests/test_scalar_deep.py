"""theory.scalar_deep (figure 2's exact depth-2 scalar meta-objective) against its twins in
simulations/twins/scalar_deep.py, and its verify checks.

* the sympy update (w₁', w₂') against a literal autograd step on both layers (float64 identity);
* the exact depth-2 meta-objective against functional MAML on deep_linear(1, 2, 1) (Monte-Carlo
  interval, z = Z_CHECK), against its α → 0 limits (the pre-adaptation loss, and the shallow
  model's slope scaled by w₁² + w₂²), and its minima (stationary, symmetric).
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.scalar_deep import (
    depth2_scalar_update_autograd,
    estimate_depth2_scalar_meta_objective,
    scalar_family,
)
from tests.helpers import IDENTITY_TOL, assert_close, assert_within_ci
from theory import scalar_deep, shallow_maml
from theory.ground.errors import ParameterError

# (w₁, w₂, α, K, μ, σ²): the figure's minimum, a mixed-sign point, a large step, and K = 2 (heavy tails)
POINTS = [(1.83, 0.61, 0.2, 5, 1.0, 1.0), (0.5, -1.2, 0.4, 3, 1.0, 0.5), (1.0, 1.0, 0.7, 10, -0.5, 2.0),
          (2.0, 0.3, 0.3, 2, 1.0, 1.0)]


# -- the exact update --------------------------------------------------------------------------
def test_update_matches_a_literal_autograd_step():
    w1_new, w2_new = scalar_deep.depth2_scalar_update_symbolic()
    s_hat, w_tau = sp.symbols("s_hat w_tau", real=True)
    update = sp.lambdify((scalar_deep.W1, scalar_deep.W2, scalar_deep.ALPHA, s_hat, w_tau), (w1_new, w2_new), "math")
    rng = np.random.default_rng(0)
    for _ in range(20):
        w1, w2, w_tau_v, alpha = rng.standard_normal(4)
        x = rng.standard_normal(5)  # (K,)
        literal = depth2_scalar_update_autograd(w1, w2, alpha, x, w_tau_v)
        s = float(np.mean(x**2))
        assert_close(update(w1, w2, alpha, s, w_tau_v), literal, IDENTITY_TOL, "(w1', w2')")
        g = s * (w1 * w2 - w_tau_v)  # W' = W − α(w₁² + w₂²)g + α²w₁w₂g² (module doc)
        closed = w1 * w2 - alpha * (w1**2 + w2**2) * g + alpha**2 * w1 * w2 * g**2
        assert_close(literal[0] * literal[1], closed, IDENTITY_TOL, "W'")


# -- the meta-objective --------------------------------------------------------------------------
@pytest.mark.parametrize("point", POINTS)
def test_meta_objective_inside_the_monte_carlo_interval(point):
    closed = scalar_deep.depth2_scalar_meta_objective(*point)
    assert_within_ci(closed, estimate_depth2_scalar_meta_objective(*point, n_tasks=200_000, seed=11), f"L{point}")


def test_monte_carlo_interval_shrinks_as_one_over_root_n():
    # K = 10, small α: light tails. At K = 5 the sample stderr of 20,000 tasks itself is noisy (terms up to
    # ŝ⁸e⁸ in the variance), so its ratio strays from 4 on about one seed in eight.
    point = (1.0, 1.0, 0.1, 10, 1.0, 1.0)
    closed = scalar_deep.depth2_scalar_meta_objective(*point)
    small = estimate_depth2_scalar_meta_objective(*point, n_tasks=20_000, seed=3)
    large = estimate_depth2_scalar_meta_objective(*point, n_tasks=320_000, seed=4)
    for est in (small, large):
        assert_within_ci(closed, est, f"L{point}, n = {est.n}")
    assert 3.4 < small.stderr / large.stderr < 4.6  # 16× the samples: about 4× narrower


def test_alpha_zero_is_the_pre_adaptation_loss_and_the_slope_is_the_shallow_one_scaled():
    rng = np.random.default_rng(1)
    expr = scalar_deep.depth2_scalar_meta_objective_expression()
    slope = sp.lambdify((scalar_deep.W1, scalar_deep.W2, scalar_deep.K_SYM, scalar_deep.MU, scalar_deep.TASK_VAR),
                        sp.diff(expr, scalar_deep.ALPHA).subs(scalar_deep.ALPHA, 0))
    for _ in range(10):
        w1, w2, mu = rng.standard_normal(3)
        k, var = int(rng.integers(1, 10)), float(rng.uniform(0.1, 2))
        family = scalar_family(k, mu, var)
        assert_close(scalar_deep.depth2_scalar_meta_objective(w1, w2, 0.0, k, mu, var),
                     shallow_maml.pre_adaptation_loss(family, np.array([w1 * w2])), 1e-12, "L at α = 0")
        _, a1, _ = shallow_maml.quadratic_coefficients(family, np.array([w1 * w2]))  # shallow: dL/dα at 0 = −a₁
        assert_close(slope(w1, w2, k, mu, var), -(w1**2 + w2**2) * a1, 1e-12, "dL/dα at α = 0")


def test_minima_are_stationary_symmetric_and_below_the_shallow_model_at_the_same_step():
    alpha, k, mu, var = 0.2, 5, 1.0, 1.0
    minima = scalar_deep.depth2_scalar_minima(alpha, k, mu, var)
    assert len(minima) == 4
    points = {(round(a, 6), round(b, 6)) for a, b, _ in minima}
    assert points == {(b, a) for a, b in points} == {(-a, -b) for a, b in points}
    h = 1e-5
    for w1, w2, value in minima:
        f = lambda a, b: scalar_deep.depth2_scalar_meta_objective(a, b, alpha, k, mu, var)  # noqa: E731
        grad = [(f(w1 + h, w2) - f(w1 - h, w2)) / (2 * h), (f(w1, w2 + h) - f(w1, w2 - h)) / (2 * h)]
        assert np.max(np.abs(grad)) < 1e-6, (w1, w2, grad)
        assert_close(f(w1, w2), value, 1e-12, "value at the minimum")
    family = scalar_family(k, mu, var)
    assert minima[0][2] < shallow_maml.post_adaptation_loss(family, np.array([mu]), alpha)  # depth learns its step
    assert minima[0][2] >= shallow_maml.best_post_adaptation_loss(family) - 1e-12  # but no better than the best α


def test_grid_evaluation_and_bad_input():
    grid = np.linspace(-1, 1, 5)
    values = scalar_deep.depth2_scalar_meta_objective(grid[:, None], grid[None, :], 0.2, 5, 1.0, 1.0)
    assert values.shape == (5, 5)
    one = scalar_deep.depth2_scalar_meta_objective(grid[1], grid[3], 0.2, 5, 1.0, 1.0)
    assert_close(values[1, 3], one, 1e-14, "grid")
    for kwargs in ({"support": 0}, {"task_var": -1.0}, {"alpha": float("nan")}):
        args = {"w1": 1.0, "w2": 1.0, "alpha": 0.2, "support": 5, "mu": 1.0, "task_var": 1.0} | kwargs
        with pytest.raises(ParameterError):
            scalar_deep.depth2_scalar_meta_objective(**args)


@pytest.mark.parametrize("check", REGISTRY["scalar_deep"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("scalar_deep.") and result.passed, result
