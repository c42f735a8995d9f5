"""Words in Ŝ and fixed matrices (theory.wishart_words): the matching sum against the known Wishart formulas,
a brute-force sample-by-sample Isserlis sum, symmetry identities and Monte-Carlo; the exact k-step loss against
the one-step and isotropic closed forms of theory.shallow_maml and the literal inner loop (verify checks)."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.wishart_words import estimate_word_moment, estimate_word_trace_moment
from tests.helpers import assert_close, assert_within_ci
from theory import shallow_maml, wishart_moments, wishart_words
from theory.ground.errors import NoClosedForm, ParameterError
from theory.task_family import LinearTaskFamily

FAST = settings(max_examples=20, deadline=None, derandomize=True, database=None)
EXACT = 1e-12  # float64 identities between two exact evaluations


def spd(dim: int, rng: np.random.Generator) -> np.ndarray:
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def _isserlis(sigma: np.ndarray, idx: list[int]) -> float:
    """E[Π_j x[idx_j]] for x ~ N(0, Σ), by the recursive Isserlis expansion."""
    if not idx:
        return 1.0
    first, rest = idx[0], idx[1:]
    return sum(sigma[first, rest[i]] * _isserlis(sigma, rest[:i] + rest[i + 1:]) for i in range(len(rest)))


def brute_force_word(sigma: np.ndarray, mats: list[np.ndarray], support: int, closed: bool):
    """The word by the definition: sum over every sample assignment and every slot index, samples independent."""
    d, m = sigma.shape[0], len(mats) + (0 if closed else 1)
    out = np.zeros((d, d))
    for samples in itertools.product(range(support), repeat=m):
        for idx in itertools.product(range(d), repeat=2 * m):  # slot 2t: left of factor t, 2t+1: right
            coef = math.prod(mats[t][idx[2 * t + 1], idx[(2 * t + 2) % (2 * m)]] for t in range(len(mats)))
            if coef:
                moment = math.prod(_isserlis(sigma, [idx[2 * t + side] for t in range(m) if samples[t] == s
                                                     for side in (0, 1)]) for s in set(samples))
                out[idx[0], idx[-1]] += coef * moment
    out /= support**m
    return float(out.sum()) if closed else out  # closed: A_m already joins the last slot to the first


@FAST
@given(st.integers(1, 5), st.integers(1, 7), st.integers(0, 10_000))
def test_two_factors_are_the_wishart_sandwich(dim, support, seed):
    rng = np.random.default_rng(seed)
    sigma, a = spd(dim, rng), rng.standard_normal((dim, dim))
    assert_close(wishart_words.word_moment(sigma, [a], support),
                 wishart_moments.sample_moment_sandwich(sigma, a, support), EXACT)
    assert_close(wishart_words.word_moment(sigma, [a], 1), wishart_moments.gaussian_fourth_moment(sigma, a), EXACT)


@pytest.mark.parametrize("m, dim, support", [(1, 4, 3), (2, 5, 2), (3, 3, 7), (4, 6, 4), (5, 2, 3), (6, 4, 5)])
def test_isotropic_traces_are_the_wick_trace_moments(m, dim, support):
    expected = float(wishart_moments.isotropic_trace_moment(m).subs({wishart_moments.d_sym: dim,
                                                                     wishart_moments.K_sym: support}))
    assert_close(wishart_words.word_trace_moment(np.eye(dim), [np.eye(dim)] * m, support), expected, EXACT)


@pytest.mark.parametrize("closed, support", [(False, 2), (True, 3)])
def test_three_factors_against_the_sample_by_sample_isserlis_sum(closed, support):
    """Checks the component count K^{c(π)}: the brute force never merges matchings across samples."""
    rng = np.random.default_rng(3)
    sigma, mats = spd(2, rng), [rng.standard_normal((2, 2)) for _ in range(3 if closed else 2)]
    literal = brute_force_word(sigma, mats, support, closed)
    engine = (wishart_words.word_trace_moment if closed else wishart_words.word_moment)(sigma, mats, support)
    assert_close(engine, literal, 1e-10)


@FAST
@given(st.integers(1, 4), st.integers(1, 6), st.integers(2, 4), st.integers(0, 10_000))
def test_trace_and_transpose_identities(dim, support, m, seed):
    rng = np.random.default_rng(seed)
    sigma, mats = spd(dim, rng), [rng.standard_normal((dim, dim)) for _ in range(m)]
    trace = wishart_words.word_trace_moment(sigma, mats, support)
    assert_close(wishart_words.word_trace_moment(sigma, mats[1:] + mats[:1], support), trace, EXACT)  # cyclic
    assert_close(wishart_words.word_trace_moment(sigma, [a.T for a in reversed(mats)], support), trace, EXACT)
    open_word = wishart_words.word_moment(sigma, mats[:-1], support)
    assert_close(np.trace(open_word @ mats[-1]), trace, EXACT)
    assert_close(wishart_words.word_moment(sigma, [a.T for a in reversed(mats[:-1])], support), open_word.T, EXACT)


@FAST
@given(st.integers(1, 4), st.integers(1, 6), st.booleans(), st.integers(0, 10_000))
def test_repeated_and_symmetric_matrices_are_linear_like_distinct_ones(dim, support, symmetric, seed):
    """word(A, A) = word(A, B) + word(A, A − B): exercises the labelling of equal and symmetric matrices."""
    rng = np.random.default_rng(seed)
    sigma, a, b = spd(dim, rng), rng.standard_normal((dim, dim)), rng.standard_normal((dim, dim))
    a = a + a.T if symmetric else a
    for word in (wishart_words.word_moment, wishart_words.word_trace_moment):
        split = word(sigma, [a, b, a], support) + word(sigma, [a, a - b, a], support)
        assert_close(word(sigma, [a, a, a], support), split, 1e-10)


def test_rotation_scaling_and_infinite_support():
    rng = np.random.default_rng(8)
    sigma, mats = spd(4, rng), [rng.standard_normal((4, 4)) for _ in range(3)]
    q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    trace = wishart_words.word_trace_moment(sigma, mats, 3)
    assert_close(wishart_words.word_trace_moment(q @ sigma @ q.T, [q @ a @ q.T for a in mats], 3), trace, EXACT)
    assert_close(wishart_words.word_trace_moment(2.5 * sigma, mats, 3), 2.5**3 * trace, EXACT)
    assert_close(wishart_words.word_moment(sigma, mats[:2], math.inf), sigma @ mats[0] @ sigma @ mats[1] @ sigma,
                 EXACT)


def test_word_moments_against_monte_carlo():
    rng = np.random.default_rng(12)
    sigma, probe = spd(3, rng), rng.standard_normal((3, 3))
    mats = [rng.standard_normal((3, 3)) for _ in range(2)]
    theory = float(np.trace(probe @ wishart_words.word_moment(sigma, mats, 4)))
    assert_within_ci(theory, estimate_word_moment(sigma, mats, 4, probe, 60_000, seed=1), "E[ŜA₁ŜA₂Ŝ]")
    mats.append(rng.standard_normal((3, 3)))
    theory = wishart_words.word_trace_moment(sigma, mats, 4)
    assert_within_ci(theory, estimate_word_trace_moment(sigma, mats, 4, 60_000, seed=2), "E tr(ŜA₁ŜA₂ŜA₃)")


def anisotropic_family(support=5) -> tuple[LinearTaskFamily, np.ndarray]:
    rng = np.random.default_rng(5)
    family = LinearTaskFamily.from_covariances(5, support, 8, task_cov=spd(5, rng), input_cov=spd(5, rng),
                                               task_mean=rng.standard_normal(5), noise_var=0.3)
    return family, rng.standard_normal(5)


@pytest.mark.parametrize("alpha", [0.0, 0.15, -0.4, 1.3])
def test_loss_at_zero_and_one_step_is_the_shallow_closed_form(alpha):
    family, theta = anisotropic_family()
    assert_close(wishart_words.anisotropic_post_adaptation_loss(family, theta, alpha, 0),
                 shallow_maml.pre_adaptation_loss(family, theta), EXACT)
    assert_close(wishart_words.anisotropic_post_adaptation_loss(family, theta, alpha, 1),
                 shallow_maml.post_adaptation_loss(family, theta, alpha, 1), EXACT)


@pytest.mark.parametrize("steps", [2, 3])
def test_isotropic_inputs_give_the_isotropic_k_step_loss(steps):
    family = LinearTaskFamily.subspace(6, 4, 8, rank=2, noise_var=0.3, mean_norm=0.5, seed=4)
    theta = np.full(6, 0.3)
    for alpha in (0.05, 0.2, 0.7):
        assert_close(wishart_words.anisotropic_post_adaptation_loss(family, theta, alpha, steps),
                     shallow_maml.post_adaptation_loss(family, theta, alpha, steps), EXACT)
    assert_close(wishart_words.anisotropic_optimal_step_size(family, steps),
                 shallow_maml.optimal_step_size(family, steps), 1e-9)


def test_infinite_support_is_population_gradient_descent():
    family, theta = anisotropic_family(math.inf)
    step = np.linalg.matrix_power(np.eye(5) - 0.2 * family.input_cov, 3)
    expected = 0.5 * np.trace(step @ family.input_cov @ step @ family.error_second_moment(theta)) + 0.15
    assert_close(wishart_words.anisotropic_post_adaptation_loss(family, theta, 0.2, 3), expected, EXACT)


def test_loss_polynomial_and_best_step():
    family, theta = anisotropic_family()
    coef = wishart_words.anisotropic_loss_polynomial(family, theta, 2)
    assert coef.shape == (5,) and coef[-1] > 0
    assert_close(np.polynomial.polynomial.polyval(0.3, coef),
                 wishart_words.anisotropic_post_adaptation_loss(family, theta, 0.3, 2), EXACT)
    assert_close(wishart_words.anisotropic_optimal_step_size(family, 1), shallow_maml.optimal_step_size(family, 1),
                 1e-10)
    best, alpha = (wishart_words.anisotropic_best_post_adaptation_loss(family, 3),
                   wishart_words.anisotropic_optimal_step_size(family, 3))
    for other in (0.9 * alpha, 1.1 * alpha):
        assert best < wishart_words.anisotropic_post_adaptation_loss(family, family.task_mean, other, 3)
    assert best < wishart_words.anisotropic_post_adaptation_loss(family, theta, alpha, 3)  # θ = μ is optimal


def test_beyond_the_exact_steps_only_simulation_answers():
    family, theta = anisotropic_family()
    with pytest.raises(NoClosedForm):
        wishart_words.anisotropic_post_adaptation_loss(family, theta, 0.1, wishart_words.MAX_WORD_STEPS + 1)


@pytest.mark.parametrize("call, parameter", [
    (lambda: wishart_words.word_moment(np.ones((2, 3)), [], 2), "sigma"),
    (lambda: wishart_words.word_moment(np.array([[1.0, 0.5], [0.0, 1.0]]), [], 2), "sigma"),
    (lambda: wishart_words.word_moment(np.eye(2), [np.eye(3)], 2), "matrices"),
    (lambda: wishart_words.word_trace_moment(np.eye(2), [], 2), "matrices"),
    (lambda: wishart_words.word_trace_moment(np.eye(2), [np.eye(2)] * 8, 2), "matrices"),
    (lambda: wishart_words.word_moment(np.eye(2), [np.eye(2)], 0), "support"),
    (lambda: wishart_words.anisotropic_post_adaptation_loss(anisotropic_family()[0], np.zeros(5), math.nan, 1),
     "alpha"),
    (lambda: wishart_words.anisotropic_loss_polynomial(anisotropic_family()[0], np.zeros(5), -1), "steps"),
])
def test_bad_input_names_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as info:
        call()
    assert info.value.parameter == parameter


@pytest.mark.parametrize("check", REGISTRY["wishart_words"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("wishart_words.") and result.passed, result
