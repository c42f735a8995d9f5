"""Gaussian/Wishart moments: symbolic derivations, known formulas, Deitmar's recursion, and Monte-Carlo twins."""
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.wishart_moments import (
    estimate_isotropic_trace_moment,
    estimate_sample_moment_sandwich,
    wick_trace_moment,
)
from tests.helpers import assert_close, assert_within_ci
from theory import wishart_moments


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_isserlis_derivation_equals_the_closed_form(dim):
    derived, closed = wishart_moments.gaussian_fourth_moment_symbolic(dim)
    assert sp.simplify(derived - closed) == sp.zeros(dim, dim)


def test_trace_moments_match_known_wishart_formulas():
    d, k = wishart_moments.d_sym, wishart_moments.K_sym
    assert sp.expand(wishart_moments.wishart_trace_moment(1) - k * d) == 0
    assert sp.expand(wishart_moments.wishart_trace_moment(2) - k * d * (k + d + 1)) == 0
    # E tr(W³) = Kd(K² + d² + 3Kd + 3K + 3d + 4) for W ~ Wishart_d(I, K)
    expected = k * d * (k**2 + d**2 + 3 * k * d + 3 * k + 3 * d + 4)
    assert sp.expand(wishart_moments.wishart_trace_moment(3) - expected) == 0
    # symmetric in d and K (tr((XᵀX)^m) = tr((XXᵀ)^m))
    for m in range(1, 6):
        expr = wishart_moments.wishart_trace_moment(m)
        assert sp.expand(expr - expr.subs({d: k, k: d}, simultaneous=True)) == 0


@pytest.mark.parametrize("m", range(1, 7))
def test_recursion_equals_the_wick_enumeration(m):
    assert sp.expand(wishart_moments.wishart_trace_moment(m) - wick_trace_moment(m)) == 0


@pytest.mark.parametrize("support", [1, 2, 7])
def test_recursion_at_one_dimension_is_the_chi_square_moments(support):
    """d = 1: W = χ²_K, E W^m = Π_{j<m} (K + 2j)."""
    exact = wishart_moments.wishart_trace_moments(1, support, 40)
    assert exact == [math.prod(support + 2 * j for j in range(m)) for m in range(41)]


def test_recursion_is_symmetric_in_d_and_k_and_exact():
    d, k = wishart_moments.d_sym, wishart_moments.K_sym
    for m in range(1, 11):  # tr((XᵀX)^m) = tr((XXᵀ)^m); m = 0 gives d, not K
        expr = wishart_moments.wishart_trace_moment(m)
        assert sp.expand(expr - expr.subs({d: k, k: d}, simultaneous=True)) == 0
        assert expr.subs({d: 5, k: 3}) == wishart_moments.wishart_trace_moments(5, 3, m)[m]
    assert wishart_moments.wishart_trace_moments(9, 4, 60)[1:] == wishart_moments.wishart_trace_moments(4, 9, 60)[1:]


def test_mixed_moments():
    """tr W ~ χ²_{Kd}: E (tr W)² = Kd(Kd + 2); a zero part multiplies by d; the order of parts is irrelevant."""
    d, k = wishart_moments.d_sym, wishart_moments.K_sym
    assert sp.expand(wishart_moments.mixed_trace_moment((1, 1)) - k * d * (k * d + 2)) == 0
    assert wishart_moments.mixed_trace_moment((2, 0), 3, 4) == 3 * wishart_moments.mixed_trace_moment((2,), 3, 4)
    assert wishart_moments.mixed_trace_moment((3, 2, 5), 4, 6) == wishart_moments.mixed_trace_moment((5, 3, 2), 4, 6)


def test_float_moments_are_the_rounded_exact_ones():
    exact = wishart_moments.isotropic_trace_moments_exact(7, 3, 30)
    assert wishart_moments.isotropic_trace_moments(7, 3, 30) == [float(c) for c in exact]
    assert exact[2] == sp.Rational(3 + 7 + 1, 3)  # c₂ = (K + d + 1)/K


def test_sandwich_at_infinite_support_is_the_population_product():
    rng = np.random.default_rng(0)
    sigma, mid = np.diag([1.0, 2.0, 0.5]), rng.standard_normal((3, 3))
    assert_close(wishart_moments.sample_moment_sandwich(sigma, mid, math.inf), sigma @ mid @ sigma, 1e-15)


@pytest.mark.parametrize("m, dim, support", [(2, 5, 3), (4, 3, 6), (10, 2, 12)])
def test_trace_moment_against_monte_carlo(m, dim, support):
    moment = wishart_moments.isotropic_trace_moment(m)
    theory = float(moment.subs({wishart_moments.d_sym: dim, wishart_moments.K_sym: support}))
    assert_within_ci(theory, estimate_isotropic_trace_moment(dim, support, m, 40_000, seed=m), f"E tr Ŝ^{m}")


def test_sandwich_against_monte_carlo():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((3, 3))
    sigma = a @ a.T + np.eye(3)
    probe, mid = rng.standard_normal((3, 3)), rng.standard_normal((3, 3))
    theory = np.trace(probe @ wishart_moments.sample_moment_sandwich(sigma, mid, 4))
    assert_within_ci(theory, estimate_sample_moment_sandwich(sigma, mid, 4, probe, 60_000, seed=3), "E[ŜAŜ]")


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 10_000))
def test_sandwich_at_one_point_is_the_fourth_moment(dim, support, seed):
    """K = 1 reduces E[ŜAŜ] to E[x xᵀ A x xᵀ]; the K-average is linear in 1/K (identities)."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal((dim, dim))
    sigma = a @ a.T + np.eye(dim)
    mid = rng.standard_normal((dim, dim))
    fourth = wishart_moments.gaussian_fourth_moment(sigma, mid)
    assert_close(wishart_moments.sample_moment_sandwich(sigma, mid, 1), fourth, 1e-12)
    expected = sigma @ mid @ sigma + (fourth - sigma @ mid @ sigma) / support
    assert_close(wishart_moments.sample_moment_sandwich(sigma, mid, support), expected, 1e-10)


@pytest.mark.parametrize("check", REGISTRY["wishart_moments"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("wishart_moments.") and result.passed, result
