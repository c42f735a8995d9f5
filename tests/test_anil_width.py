"""ANIL at width h: theory.anil_width (the exact loss as a preconditioned step P = WᵀW, the rank-h optimum)
against its numerical optimiser, the any-P optimum, finite differences and the Monte-Carlo twin
(simulations/twins/anil_width.py: a real two-layer net, head-only functional inner loop)."""
import math
from itertools import pairwise

import numpy as np
import pytest

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.anil_width import estimate_anil_post_adaptation_loss
from tests.helpers import assert_close, assert_within_ci
from theory import anil_width, preconditioned_maml, shallow_maml
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily

OPTIMUM_TOL = 1e-9  # relative: L-BFGS stops at a relative loss change of 1e-14, the minimum is quadratic


def _general(dim: int = 5, support=3, mean: bool = True, seed: int = 0) -> LinearTaskFamily:
    """Random Σx, a rank-3 Σw with spread eigenvalues, s² = 0.3, μ random (or 0)."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((dim, dim)), rng.standard_normal((dim, 3)) * np.array([2.0, 1.0, 0.4])
    return LinearTaskFamily.from_covariances(dim, support, 6, task_cov=b @ b.T, input_cov=a @ a.T / dim + np.eye(dim),
                                             task_mean=rng.standard_normal(dim) if mean else None, noise_var=0.3)


def test_anil_loss_is_the_preconditioned_loss_at_theta_and_p():
    family = _general()
    rng = np.random.default_rng(1)
    for h in (1, 2, 7):
        w, v0 = rng.standard_normal((h, 5)), rng.standard_normal(h)
        assert_close(anil_width.anil_post_adaptation_loss(family, w, v0, 0.2),
                     preconditioned_maml.preconditioned_post_adaptation_loss(family, w.T @ v0, w.T @ w, 0.2), 1e-14)


def test_gradient_against_central_differences():
    family, eps = _general(), 1e-6
    rng = np.random.default_rng(2)
    w, v0 = rng.standard_normal((3, 5)), rng.standard_normal(3)
    _, g_w, g_v = anil_width.anil_loss_gradient(family, w, v0, 0.3)
    x = np.concatenate([w.ravel(), v0])
    loss = lambda z: anil_width.anil_post_adaptation_loss(family, z[:15].reshape(3, 5), z[15:], 0.3)  # noqa: E731
    numeric = [(loss(x + eps * e) - loss(x - eps * e)) / (2 * eps) for e in np.eye(x.size)]
    assert_close(np.concatenate([g_w.ravel(), g_v]), numeric, 1e-7, "analytic vs central difference")


@pytest.mark.parametrize("support", [3, math.inf])
def test_closed_form_equals_the_numerical_optimum(support):
    family = _general(support=support, mean=False)  # μ = 0: closed form, for a random Σx too
    for h in (1, 2, 3, 6):
        closed = anil_width.anil_best_post_loss(family, h, 0.7)
        numeric = anil_width.anil_best_post_loss(family, h, 0.7, restarts=3, method="numerical")
        assert closed.method == "closed form" and numeric.method == "numerical (3 seeded restarts)"
        assert_close(closed.value, anil_width.rank_limited_best_post_loss(family, h), 1e-12)
        assert_close(numeric.value, closed.value, OPTIMUM_TOL, f"h={h}, K={support}")


def test_isotropic_closed_form_keeps_the_largest_gains():
    """Σx = I, μ = 0: L_h = ½[tr Σw − Σ_{i≤h} λ_i²/(c₁λ_i + c₂)] + ½s², the top-h eigenvalues of Σw."""
    lam = np.array([3.0, 1.0, 0.5, 0.0])
    family = LinearTaskFamily.from_covariances(4, 5, 6, task_cov=np.diag(lam[[2, 0, 3, 1]]), noise_var=0.2)
    c1, c2 = 6 / 5, (lam.sum() + 0.2) / 5
    for h in (1, 2, 3, 4):
        expected = 0.5 * (lam.sum() - np.sum(lam[:h] ** 2 / (c1 * lam[:h] + c2)) + 0.2)
        assert_close(anil_width.anil_best_post_loss(family, h).value, expected, 1e-13, f"h={h}")


@pytest.mark.parametrize("support", [5, math.inf])
def test_full_width_and_full_rank_reach_the_preconditioned_best(support):
    family = LinearTaskFamily.subspace(8, 5, 10, rank=2, noise_var=0.1, seed=5)
    if math.isinf(support):
        family = LinearTaskFamily(8, math.inf, 10, 0.1, task_factor=family.task_factor)
    best = preconditioned_maml.preconditioned_best_post_loss(family)
    for h in (2, 3, 8, 12):  # h ≥ rank Σw = 2 and h ≥ d = 8
        assert_close(anil_width.anil_best_post_loss(family, h, 0.4).value, best, 1e-12, f"h={h}")
    assert anil_width.anil_best_post_loss(family, 1, 0.4).value > best * (1 + 1e-3)
    general = _general(mean=False)
    assert_close(anil_width.anil_best_post_loss(general, 5).value,
                 preconditioned_maml.preconditioned_best_post_loss(general), 1e-12, "h = d, random Σx")


def test_the_best_loss_does_not_depend_on_alpha():
    family = LinearTaskFamily.subspace(20, 5, 10, rank=2, seed=5)
    for h in (1, 2):
        values = [anil_width.anil_best_post_loss(family, h, a).value for a in (0.05, 1.0, 3.0)]
        assert_close(values, [values[0]] * 3, 1e-13)


def test_monotone_in_width_and_bounded_with_a_mean():
    family = _general(dim=4)  # μ ≠ 0 outside every row space: numerical, above the rank-h bound L_h
    closed = [anil_width.rank_limited_best_post_loss(family, h) for h in range(1, 6)]
    assert all(a >= b for a, b in pairwise(closed))
    found = [anil_width.anil_best_post_loss(family, h, 0.5, restarts=3) for h in (1, 2, 3)]
    assert all(f.method.startswith("numerical") for f in found)
    values = [f.value for f in found]
    assert all(a >= b * (1 - 1e-9) for a, b in pairwise(values)), values
    assert all(v >= bound * (1 - 1e-12) for v, bound in zip(values, closed)), (values, closed)
    assert values[0] > closed[0] * (1 + 1e-3)  # at h = 1 the coupling of θ and P costs something


def test_reported_optimum_is_attained_at_its_w_and_v0():
    family = _general(dim=4)
    for method in ("auto", "numerical"):
        best = anil_width.anil_best_post_loss(family, 2, 0.5, restarts=2, method=method)
        assert_close(anil_width.anil_post_adaptation_loss(family, best.w, best.v0, 0.5), best.value, 1e-14)
    mean_free = _general(dim=4, mean=False)
    best = anil_width.anil_best_post_loss(mean_free, 2, 0.5)
    assert best.w.shape == (2, 4) and best.v0.shape == (2,)
    assert_close(anil_width.anil_post_adaptation_loss(mean_free, best.w, best.v0, 0.5), best.value, 1e-14)


def test_a_scaled_identity_body_is_the_plain_step():
    """A body W = √(α₀/α)·I (h = d) makes ANIL the plain step α₀ from θ = Wᵀv₀."""
    family = _general()
    theta = np.arange(5.0) / 5
    w = np.sqrt(0.2 / 0.5) * np.eye(5)
    assert_close(anil_width.anil_post_adaptation_loss(family, w, np.linalg.solve(w.T, theta), 0.5),
                 shallow_maml.post_adaptation_loss(family, theta, 0.2), 1e-12)


def test_exact_loss_against_the_literal_inner_loop():
    family = _general(dim=4)
    rng = np.random.default_rng(3)
    w, v0 = 0.5 * rng.standard_normal((2, 4)), rng.standard_normal(2)
    assert_within_ci(anil_width.anil_post_adaptation_loss(family, w, v0, 0.15),
                     estimate_anil_post_adaptation_loss(family, w, v0, 0.15, 40_000, seed=4), "h=2, μ≠0, random Σx")


@pytest.mark.parametrize("call, parameter", [
    (lambda f: anil_width.anil_post_adaptation_loss(f, np.ones((2, 3)), np.ones(2), 0.1), "w"),
    (lambda f: anil_width.anil_post_adaptation_loss(f, np.ones((2, 5)), np.ones(3), 0.1), "v0"),
    (lambda f: anil_width.anil_post_adaptation_loss(f, np.full((1, 5), np.nan), np.ones(1), 0.1), "w"),
    (lambda f: anil_width.anil_post_adaptation_loss(f, np.ones((1, 5)), np.ones(1), math.nan), "alpha"),
    (lambda f: anil_width.anil_best_post_loss(f, 0), "width"),
    (lambda f: anil_width.anil_best_post_loss(f, 2, alpha=0.0), "alpha"),
    (lambda f: anil_width.anil_best_post_loss(f, 2, alpha=-1.0), "alpha"),
    (lambda f: anil_width.anil_best_post_loss(f, 2, restarts=0), "restarts"),
    (lambda f: anil_width.anil_best_post_loss(f, 2, method="newton"), "method"),
    (lambda f: anil_width.rank_limited_best_post_loss(f, 1.5), "width"),
])
def test_bad_input_names_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as info:
        call(_general())
    assert info.value.parameter == parameter


@pytest.mark.parametrize("check", REGISTRY["anil_width"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("anil_width.") and result.passed, result


def test_closed_form_attains_exactly_where_auto_takes_it():
    """closed_form_attains says in advance which branch anil_best_post_loss's "auto" takes (explore skips long
    numerical searches with it): μ = 0 or μ in the rows of the closed-form W, and not a μ outside them."""
    inside = LinearTaskFamily.from_covariances(4, 5, 10, task_cov=np.diag([1.0, 0.5, 0.0, 0.0]),
                                               task_mean=np.array([0.3, -0.2, 0.0, 0.0]))
    outside = LinearTaskFamily.from_covariances(4, 5, 10, task_cov=np.diag([1.0, 0.5, 0.0, 0.0]),
                                                task_mean=np.array([0.3, 0.0, 0.4, 0.0]))
    for family, expected in ((inside, True), (outside, False), (LinearTaskFamily.subspace(6, 5, rank=2), True)):
        assert anil_width.closed_form_attains(family, 2, 0.3) is expected
        method = anil_width.anil_best_post_loss(family, 2, 0.3, restarts=1).method
        assert (method == "closed form") is expected, method
