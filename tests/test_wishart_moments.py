"""Gaussian/Wishart moments: symbolic derivations, known formulas, and Monte-Carlo twins."""
import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.wishart_moments import estimate_isotropic_trace_moment, estimate_sample_moment_sandwich
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


@pytest.mark.parametrize("m, dim, support", [(2, 5, 3), (4, 3, 6)])
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


@pytest.mark.parametrize("check", REGISTRY["wishart_moments"], ids=lambda c: c.__name__)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("wishart_moments.") and result.passed, result
