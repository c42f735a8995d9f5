"""theory.depth2_maml, the exact expected loss of full MAML on a depth-2 linear net, against its special cases
(the scalar meta-objective of figure 2, the shallow loss, the pre-adaptation loss, a deterministic task), the
first-order surrogate's second-order gap, the cubature's exactness, the optimum search, and its Monte-Carlo twin
(simulations/twins/depth2_maml.py) through the verify checks."""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy as sp

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.scalar_deep import scalar_family
from tests.helpers import assert_close
from theory import deep_linear, depth2_maml, shallow_maml
from theory.bayes_floor import bayes_optimal_loss
from theory.ground.errors import ParameterError
from theory.scalar_deep import depth2_scalar_meta_objective
from theory.task_family import LinearTaskFamily

ROOT = Path(__file__).resolve().parents[1]


def small_family(noise_var: float = 0.3, mean: bool = True, isotropic: bool = False, support=3):
    """d = 3: anisotropic Σx (or I), full-rank Σw, μ ≠ 0 (or 0), label noise s²."""
    rng = np.random.default_rng(4)
    a, f = rng.standard_normal((3, 3)) / 2, rng.standard_normal((3, 3)) / 2
    return LinearTaskFamily.from_covariances(3, support, 10, task_cov=0.2 * np.eye(3) + f @ f.T,
                                             input_cov=None if isotropic else 0.5 * np.eye(3) + a @ a.T,
                                             task_mean=np.array([0.4, -0.2, 0.3]) if mean else None,
                                             noise_var=noise_var)


def random_depth2(seed: int, width: int, dim: int = 3):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((width, dim)) / np.sqrt(dim), rng.standard_normal((1, width)) / np.sqrt(width)


@pytest.mark.parametrize("w1, w2, alpha, support, mu, task_var", [
    (1.83, 0.61, 0.2, 5, 1.0, 1.0), (0.7, -1.3, 0.9, 3, -0.4, 2.0), (-0.3, 0.8, 1.7, 1, 0.5, 0.3),
    (0.0, 1.0, 0.5, 2, 0, 1)])
def test_depth2_loss_at_d_h_1_is_the_scalar_meta_objective(w1, w2, alpha, support, mu, task_var):
    family = scalar_family(support, mu, task_var)
    assert_close(depth2_maml.depth2_post_adaptation_loss(family, [[w1]], [[w2]], alpha),
                 depth2_scalar_meta_objective(w1, w2, alpha, support, mu, task_var), 1e-12, "d = h = 1, s² = 0")


@pytest.mark.parametrize("isotropic", [True, False])
def test_depth2_loss_is_the_shallow_loss_when_w_e_is_zero_and_p_scalar(isotropic):
    """W1 = √c [I; 0], w2 = t e_{d+1} ⊥ range W1: w_e = 0 and P = (c + t²) I, a plain step of size α(c + t²)."""
    family = small_family(isotropic=isotropic)
    c, t, alpha = 0.7, 0.8, 0.35
    w1 = np.sqrt(c) * np.eye(5, 3)
    w2 = t * np.eye(1, 5, 4)
    expected = shallow_maml.post_adaptation_loss(family, np.zeros(3), alpha * (c + t**2))
    assert_close(depth2_maml.depth2_post_adaptation_loss(family, w1, w2, alpha), expected, 1e-12, "w_e = 0, P ∝ I")


@pytest.mark.parametrize("support", [1, 3, math.inf])
def test_depth2_loss_at_alpha_zero_is_the_pre_adaptation_loss(support):
    family = small_family(support=support)
    w1, w2 = random_depth2(1, 4)
    assert_close(depth2_maml.depth2_post_adaptation_loss(family, w1, w2, 0.0),
                 shallow_maml.pre_adaptation_loss(family, (w2 @ w1)[0]), 1e-12, "L(α = 0)")


def test_depth2_loss_with_population_gradient_and_fixed_task_is_deterministic():
    """K = ∞ and Σw = 0: g = Σx(w_e − μ) exactly, L = ½ rᵀΣx r + ½s² with r = depth2_update's w_e' − μ."""
    sx = small_family().input_cov
    mu = np.array([0.4, -0.2, 0.3])
    family = LinearTaskFamily(3, math.inf, 10, 0.3, input_factor=np.linalg.cholesky(sx), task_mean=mu,
                              task_factor=np.zeros((3, 1)))
    w1, w2 = random_depth2(2, 4)
    g = sx @ ((w2 @ w1)[0] - mu)
    r = deep_linear.depth2_update(w1, w2, g[None, :], 0.6)[0] - mu
    assert_close(depth2_maml.depth2_post_adaptation_loss(family, w1, w2, 0.6), 0.5 * (r @ sx @ r + 0.3), 1e-12,
                 "deterministic")


def test_first_order_surrogate_is_exact_to_first_order_and_its_gap_is_second_order():
    """Gap = α² E[(w_eᵀg)(eᵀΣx g)] + O(α³); that coefficient by an independent Gaussian computation:
    E[g gᵀ | e] = (q/K)Σx + (1 + 1/K) b bᵀ, b = Σx e, q = eᵀΣx e + s², then the moments of e ~ N(m, Σw)."""
    family = small_family()
    w1, w2 = random_depth2(3, 4)
    sx, cw, s2, k = family.input_cov, family.task_cov, family.noise_var, family.support
    a = (w2 @ w1)[0]
    m = a - family.task_mean

    def cubic(quad, lin):  # E[(eᵀ quad e)(linᵀe)], quad symmetric
        return (m @ quad @ m + np.trace(quad @ cw)) * (lin @ m) + 2 * lin @ cw @ quad @ m

    coefficient = (cubic(sx, sx @ sx @ a) + s2 * a @ sx @ sx @ m) / k + (1 + 1 / k) * cubic(sx @ sx, sx @ a)

    def gap(alpha):
        return (depth2_maml.depth2_post_adaptation_loss(family, w1, w2, alpha)
                - deep_linear.first_order_surrogate_loss(family, [w1, w2], alpha))

    def surrogate(alpha):  # a quadratic in α
        return deep_linear.first_order_surrogate_loss(family, [w1, w2], alpha)

    coef = depth2_maml.depth2_loss_polynomial(family, w1, w2)
    assert_close(coef[:2], [surrogate(0.0), (surrogate(1.0) - surrogate(-1.0)) / 2], 1e-12, "c₀, c₁")
    surrogate_c2 = (surrogate(1.0) + surrogate(-1.0)) / 2 - surrogate(0.0)
    assert_close(coef[2] - surrogate_c2, coefficient, 1e-10, "α² gap coefficient")
    ratios = [gap(alpha) / gap(alpha / 2) for alpha in (2e-3, 1e-3)]  # gap = 3.47α² − 50.5α³ + 48.0α⁴ here
    assert all(3.9 < r < 4.1 for r in ratios), ratios
    layers = [np.random.default_rng(5).standard_normal((1, 3))]
    assert_close(deep_linear.first_order_surrogate_loss(family, layers, 0.3),
                 shallow_maml.post_adaptation_loss(family, layers[0][0], 0.3), 1e-12, "depth 1: P = I, exact")


@pytest.mark.parametrize("rank", [1, 2, 3, 6])
def test_gaussian_cubature_is_exact_to_degree_5(rank):
    z, w = depth2_maml.gaussian_cubature(rank)
    assert len(z) == 2 * rank**2 + 1
    for powers in itertools.product(range(6), repeat=min(rank, 2)):
        if sum(powers) <= 5:
            exact = np.prod([sp.factorial2(p - 1) if p % 2 == 0 else 0 for p in powers])
            assert abs(np.sum(w * np.prod(z[:, : len(powers)] ** np.array(powers), axis=1)) - exact) < 1e-12


def test_depth2_best_post_loss_lies_between_the_bayes_floor_and_the_shallow_step():
    family = LinearTaskFamily.subspace(4, 3, 10, rank=2, noise_var=0.1, seed=2)
    alpha = shallow_maml.optimal_step_size(family)
    value, w1, w2, method = depth2_maml.depth2_best_post_loss(family, 2, alpha, restarts=2)
    assert w1.shape == (2, 4) and w2.shape == (1, 2) and method.startswith("numerical")
    assert value == depth2_maml.depth2_post_adaptation_loss(family, w1, w2, alpha)
    # W1 = 0, ‖w2‖ = 1 is a plain step of size α from w_e = 0 = μ, so the minimum is at most that
    assert value <= shallow_maml.post_adaptation_loss(family, np.zeros(4), alpha) + 1e-12
    assert value < shallow_maml.pre_adaptation_loss(family, family.task_mean)
    assert value >= bayes_optimal_loss(family).value


@pytest.mark.parametrize("width, kwargs", [
    (2, {}), (3, {"isotropic": True}), (1, {"mean": False, "noise_var": 0.0}), (4, {"support": 1}),
    (2, {"support": math.inf}), (3, {"isotropic": True, "mean": False, "support": math.inf})])
def test_search_gradient_is_torch_autograd_of_the_same_loss(width, kwargs):
    """depth2_best_post_loss's objective (HIPS autograd through _flat_loss, no torch) against torch autograd of
    depth2_loss_of_nets (the nets built along a leading axis) at random float64 weights: value and gradient."""
    torch = pytest.importorskip("torch")
    from autograd import value_and_grad

    family, alpha = small_family(**kwargs), 0.45
    for seed in range(3):
        w1, w2 = random_depth2(10 + seed, width)
        value, grad = value_and_grad(depth2_maml._flat_loss(family, width, alpha))(np.concatenate([w1.ravel(),
                                                                                                   w2.ravel()]))
        t1, t2 = (torch.tensor(w[None], dtype=torch.float64, requires_grad=True) for w in (w1, w2))
        loss = depth2_maml.depth2_loss_of_nets(family, alpha)(t1, t2)[0]
        expected = torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, (t1, t2))]).numpy()
        assert_close(value, loss.item(), 1e-12, "loss")
        assert_close(value, depth2_maml.depth2_post_adaptation_loss(family, w1, w2, alpha), 1e-12, "loss, closed")
        assert_close(grad, expected, 1e-10, f"gradient at width {width}, seed {seed}")


def test_optimum_search_does_not_import_torch():
    """Importing theory.depth2_maml and running the search leave torch unimported (explore --theory-only's time)."""
    code = ("import sys\n"
            "from theory.depth2_maml import depth2_best_post_loss\n"
            "from theory.task_family import LinearTaskFamily\n"
            "family = LinearTaskFamily.subspace(4, 3, 10, rank=2, noise_var=0.1, seed=2)\n"
            "value = depth2_best_post_loss(family, 2, 0.2, restarts=1, gradient='autograd')[0]\n"
            "print(value > 0, 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"], done.stdout


@pytest.mark.parametrize("call, parameter", [
    (lambda: depth2_maml.depth2_post_adaptation_loss(small_family(), np.ones((2, 4)), np.ones((1, 2)), 0.1), "w1"),
    (lambda: depth2_maml.depth2_post_adaptation_loss(small_family(), np.ones((2, 3)), np.ones((2, 2)), 0.1), "w2"),
    (lambda: depth2_maml.depth2_post_adaptation_loss(small_family(), np.ones((2, 3)), np.ones((1, 3)), 0.1),
     "layers[1]"),
    (lambda: depth2_maml.depth2_post_adaptation_loss(small_family(), np.ones((2, 3)), np.ones((1, 2)), np.nan),
     "alpha"),
    (lambda: depth2_maml.depth2_best_post_loss(small_family(), 0, 0.1), "width"),
    (lambda: depth2_maml.depth2_best_post_loss(small_family(), 2, 0.1, restarts=0), "restarts"),
    (lambda: depth2_maml.depth2_best_post_loss(small_family(), 2, 0.1, gradient="jax"), "gradient"),
    (lambda: depth2_maml.gaussian_cubature(0), "rank"),
    (lambda: deep_linear.first_order_surrogate_loss(small_family(), [np.ones((2, 3))], 0.1), "layers"),
])
def test_bad_inputs_raise_parameter_error_naming_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as err:
        call()
    assert err.value.parameter == parameter
    assert str(err.value).startswith(parameter)


@pytest.mark.parametrize("check", REGISTRY["depth2_maml"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("depth2_maml.") and result.passed, result
