"""The Bayes floor ½(E tr(Σx Σ_post) + s²) (theory.bayes_floor) against the literal posterior covariance in d
dimensions, the exponential-integral form of the rank-1 case, the posterior-mean twin, and the MAML levels above it."""
import itertools
import math

import numpy as np
import pytest
from scipy.special import expn

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.statistics import Estimate
from simulations.twins.bayes_floor import estimate_bayes_optimal_loss
from tests.helpers import assert_close, assert_within_ci
from theory import preconditioned_maml, shallow_maml
from theory.bayes_floor import bayes_optimal_loss, signal_eigenvalues
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily

DIAG = np.diag([0.5, 1.0, 2.0, 3.0])


def _literal_floor(family: LinearTaskFamily, n: int, seed: int) -> Estimate:
    """½(tr(Σx Σ_post) + s²) with Σ_post = Σw − Σw Xᵀ(XΣwXᵀ + s²I)⁺XΣw formed in d dimensions, over n draws of X."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, family.support, family.dim)) @ family.input_factor.T  # (n, K, d)
    sw = family.task_cov  # (d, d)
    xs = x @ sw  # X Σw, (n, K, d)
    gram = xs @ x.transpose(0, 2, 1) + family.noise_var * np.eye(family.support)  # (n, K, K)
    post = sw - xs.transpose(0, 2, 1) @ np.linalg.pinv(gram, hermitian=True) @ xs  # Σ_post, (n, d, d)
    return Estimate.from_samples(0.5 * (np.einsum("ij,nji->n", family.input_cov, post) + family.noise_var))


def _rank_one(support: int = 3, noise_var: float = 0.3) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(4, support, 5, rank=1, noise_var=noise_var, mean_norm=1.0, input_cov=DIAG,
                                     seed=4)


def test_exact_cases():
    inf = bayes_optimal_loss(LinearTaskFamily.subspace(5, math.inf, 5, rank=2, noise_var=0.4))
    assert (inf.value, inf.ci95, inf.method) == (0.2, 0.0, "exact")
    noiseless = bayes_optimal_loss(LinearTaskFamily.subspace(6, 3, 5, rank=3, input_cov=np.diag(np.arange(1, 7.))))
    assert (noiseless.value, noiseless.method) == (0.0, "exact") and "almost surely" in noiseless.note
    no_tasks = bayes_optimal_loss(LinearTaskFamily(3, 2, 5, noise_var=0.6, task_factor=np.zeros((3, 1))))
    assert (no_tasks.value, no_tasks.method) == (0.3, "exact")
    under = LinearTaskFamily.subspace(6, 2, 5, rank=5, task_scale=1.5, seed=1)  # s² = 0, K < r, Σx = I
    floor = bayes_optimal_loss(under)
    assert floor.method == "exact" and floor.ci95 == 0
    assert_close(floor.value, 0.5 * 1.5**2 * (5 - 2), 1e-12, "½ v (r − K)")
    literal = _literal_floor(under, 2_000, seed=2)  # tr(Σ_post) = v (r − K) on every draw: a projection's trace
    assert_close(literal.mean, floor.value, 1e-12, "s² = 0, K < r, literal pseudo-inverse")
    assert_within_ci(floor.value, estimate_bayes_optimal_loss(under, 20_000, seed=3), "s² = 0, K < r, twin")


def test_rank_one_quadrature_against_brute_force_and_exponential_integral():
    family = _rank_one()
    floor = bayes_optimal_loss(family)
    assert floor.method == "quadrature" and floor.ci95 == 0
    assert_within_ci(floor.value, _literal_floor(family, 200_000, seed=5), "literal Σ_post in d = 4")
    (g,) = signal_eigenvalues(family)
    for k in (2, 4, 6, 10):  # E[1/(1 + c χ²_K)] = z e^z E_{K/2}(z), z = s²/(2g), for even K
        z = family.noise_var / (2 * g)
        excess = g * z * math.exp(z) * expn(k // 2, z)
        assert_close(bayes_optimal_loss(_rank_one(k)).value, 0.5 * (excess + family.noise_var), 1e-10, f"K={k}")


@pytest.mark.parametrize("noise_var, support", [(0.25, 4), (0.0, 2)])
def test_monte_carlo_against_the_literal_posterior(noise_var, support):
    rng = np.random.default_rng(6)
    f, a = rng.standard_normal((5, 3)), rng.standard_normal((5, 5))
    family = LinearTaskFamily.from_covariances(5, support, 5, task_cov=f @ f.T / 3, input_cov=a @ a.T / 5 + np.eye(5),
                                               noise_var=noise_var)
    floor = bayes_optimal_loss(family, 400_000, seed=7)
    assert floor.method == "monte-carlo" and floor.ci95 > 0
    assert "Monte-Carlo over support sets" in str(floor)
    literal = _literal_floor(family, 100_000, seed=8)
    assert_within_ci(floor.value, Estimate(literal.mean, math.hypot(literal.stderr, floor.stderr), literal.n))
    assert bayes_optimal_loss(family, 1000, seed=7) == bayes_optimal_loss(family, 1000, seed=7)


def test_the_floor_falls_with_k_and_rises_with_noise():
    by_k = [bayes_optimal_loss(_rank_one(k)).value for k in (1, 2, 3, 5, 10, 100, 10_000)]
    assert np.all(np.diff(by_k) < 0) and by_k[-1] > 0.15 and abs(by_k[-1] - 0.15) < 1e-3  # → ½ s² = 0.15
    by_noise = [bayes_optimal_loss(_rank_one(3, s2)).value for s2 in (0.0, 0.01, 0.1, 0.3, 1.0)]
    assert by_noise[0] == 0 and np.all(np.diff(by_noise) > 0)
    iso = [bayes_optimal_loss(LinearTaskFamily.subspace(6, k, 5, rank=3, noise_var=0.5), 100_000, seed=k)
           for k in (1, 3, 6, 12)]
    assert all(a.value - a.ci95 > b.value + b.ci95 for a, b in itertools.pairwise(iso))
    assert iso[-1].value > 0.25


@pytest.mark.parametrize("family", [
    LinearTaskFamily.subspace(8, 5, 5, rank=3, noise_var=0.5, mean_norm=1.0, seed=1),
    LinearTaskFamily.subspace(20, 5, 5, rank=2, seed=5),
    LinearTaskFamily.subspace(4, 3, 5, rank=1, noise_var=0.3, input_cov=DIAG, seed=4),
    LinearTaskFamily.from_covariances(4, 2, 5, task_cov=np.diag([1.0, 0.5, 0.2, 0.1]), input_cov=DIAG,
                                      noise_var=0.1),
], ids=["iso-r3-noisy", "d20-r2-noiseless", "rank1", "full-rank-K<d"])
def test_the_floor_lies_below_the_maml_levels(family):
    floor = bayes_optimal_loss(family, 200_000, seed=9)
    upper = floor.value + floor.ci95
    assert upper < preconditioned_maml.preconditioned_best_post_loss(family) <= (
        shallow_maml.best_post_adaptation_loss(family) + 1e-12)


@pytest.mark.parametrize("kwargs, parameter", [
    ({"family": "not a family"}, "family"),
    ({"n_samples": 1}, "n_samples"),
    ({"n_samples": 2.5}, "n_samples"),
    ({"seed": -1}, "seed"),
])
def test_bad_input_names_the_parameter(kwargs, parameter):
    args = {"family": _rank_one()} | kwargs
    with pytest.raises(ParameterError) as info:
        bayes_optimal_loss(**args)
    assert info.value.parameter == parameter


@pytest.mark.parametrize("check", REGISTRY["bayes_floor"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("bayes_floor.") and result.passed, result
