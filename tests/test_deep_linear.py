"""theory.deep_linear against its autograd twin simulations/twins/deep_linear.py (float64 identities).

The twin takes a literal gradient step on every adapted layer with torch.autograd; the theory gives
the exact depth-2 update, the implicit preconditioner P and the exact single-layer steps.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.deep_linear import (
    end_to_end_gradient_autograd,
    first_order_change,
    first_order_change_central,
    layer_gradients_autograd,
    literal_layer_step,
)
from simulations.twins.scalar_deep import scalar_family
from tests.helpers import IDENTITY_TOL, assert_close
from theory import deep_linear, shallow_maml
from theory.bayes_floor import bayes_optimal_loss
from theory.ground.errors import ParameterError
from theory.scalar_deep import depth2_scalar_meta_objective
from theory.task_family import LinearTaskFamily

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@st.composite
def nets(draw, min_depth: int = 1, max_depth: int = 4, out_dim: int | None = None):
    """(seed, dims) with dims = [in, h_1, …, h_{L-1}, out] for a random deep linear net."""
    depth = draw(st.integers(min_depth, max_depth))
    dims = draw(st.lists(st.integers(1, 5), min_size=depth + 1, max_size=depth + 1))
    if out_dim is not None:
        dims[-1] = out_dim
    return draw(st.integers(0, 2**32 - 1)), dims


def make_net(seed: int, dims: list[int], k: int = 6):
    """Layers W_l ~ N(0, 1/h_{l-1}) (bottom first), inputs x (K, in) and targets y (K, out)."""
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i]) for i in range(len(dims) - 1)]
    return layers, rng.standard_normal((k, dims[0])), rng.standard_normal((k, dims[-1]))


def first_order(layers, g, adapt: str) -> np.ndarray:
    """−unvec(P vec G) from the explicit preconditioner, (out, in)."""
    return deep_linear.preconditioned_step(np.zeros_like(g), g, deep_linear.implicit_preconditioner(layers, adapt), 1.0)


# -- end-to-end map, gradients -----------------------------------------------------------------
@FAST
@given(nets())
def test_gradients_match_autograd(net):
    layers, x, y = make_net(*net)
    w = deep_linear.end_to_end(layers)
    assert_close(w, np.linalg.multi_dot([np.eye(w.shape[0]), *layers[::-1]]), 1e-12, "W = W_L ⋯ W_1")
    g = deep_linear.squared_loss_gradient(w, x, y)
    assert_close(g, end_to_end_gradient_autograd(w, x, y, "squared"), IDENTITY_TOL, "G")
    pairs = zip(deep_linear.layer_gradients(layers, g), layer_gradients_autograd(layers, x, y))
    for i, (ours, auto) in enumerate(pairs):
        assert_close(ours, auto, IDENTITY_TOL, f"∂L/∂W_{i + 1} = A_lᵀ G B_lᵀ")


# -- exact depth-2 update ----------------------------------------------------------------------
def test_depth2_symbolic_expansion_is_the_stated_form():
    w1, w2, g, alpha = deep_linear.depth2_symbols()
    stated = w2 * w1 - alpha * (w2 * w2.T * g + g * w1.T * w1) + alpha**2 * g * w1.T * w2.T * g
    assert (deep_linear.depth2_update_symbolic() - stated).expand() == sp.ZeroMatrix(*stated.shape)
    orders = deep_linear.depth2_update_by_order()
    assert sorted(orders) == [0, 1, 2]
    assert (orders[1] + w2 * w2.T * g + g * w1.T * w1).expand() == sp.ZeroMatrix(*stated.shape)
    latex = deep_linear.latex_depth2_update()
    assert latex.startswith("W' = W_{2} W_{1} - \\alpha") and "\\alpha^{2}" in latex
    assert "\\otimes" in deep_linear.latex_implicit_preconditioner()


DEPTH2_LAMBDA = sp.lambdify(deep_linear.depth2_symbols(), deep_linear.depth2_update_symbolic(), "numpy")


@FAST
@given(nets(min_depth=2, max_depth=2), st.floats(-2.0, 2.0))
def test_depth2_exact_update_matches_literal_step(net, alpha):
    layers, x, y = make_net(*net)
    g = deep_linear.squared_loss_gradient(deep_linear.end_to_end(layers), x, y)
    literal = literal_layer_step(layers, x, y, alpha, loss="squared").numpy()
    assert_close(deep_linear.depth2_update(*layers, g, alpha), literal, IDENTITY_TOL, "numeric W'")
    assert_close(DEPTH2_LAMBDA(*layers, g, alpha), literal, IDENTITY_TOL, "lambdified sympy W'")


# -- first order: the implicit preconditioner --------------------------------------------------
@FAST
@given(nets(), st.sampled_from(deep_linear.ADAPT_CHOICES))
def test_first_order_step_is_the_preconditioned_gradient(net, adapt):
    layers, x, y = make_net(*net)
    g = deep_linear.squared_loss_gradient(deep_linear.end_to_end(layers), x, y)
    expected = first_order(layers, g, adapt)
    assert_close(first_order_change(layers, x, y, adapt=adapt), expected, IDENTITY_TOL, "dW'/dα at 0 (autograd)")
    # central difference at h = 1e-5: error h²|W'''| + eps/h, both far below 1e-7
    central = first_order_change_central(layers, x, y, adapt=adapt)
    assert_close(central, expected, 1e-7, "central difference of W'(α)")
    assert_close(deep_linear.factored_step(np.zeros_like(g), g, deep_linear.preconditioner_factors(layers, adapt), 1.0),
                 expected, IDENTITY_TOL, "Σ_l A_lA_lᵀ G B_lᵀB_l")


def test_remainder_is_second_order_in_alpha():
    """‖W'(α) − W − α dW'/dα‖ shrinks 4× when α halves (all layers adapt, depth 3)."""
    layers, x, y = make_net(7, [4, 3, 5, 2])
    w = deep_linear.end_to_end(layers)
    slope = first_order(layers, deep_linear.squared_loss_gradient(w, x, y), "all")

    def remainder(a):
        return np.linalg.norm(literal_layer_step(layers, x, y, a).numpy() - w - a * slope)

    ratios = [remainder(a) / remainder(a / 2) for a in (1e-2, 1e-3)]
    assert all(3.9 < r < 4.1 for r in ratios), ratios


@FAST
@given(nets(), st.sampled_from(["head", "bottom"]))
def test_single_layer_step_is_exact_at_finite_alpha(net, adapt):
    layers, x, y = make_net(*net)
    alpha = 0.3
    w = deep_linear.end_to_end(layers)
    g = deep_linear.squared_loss_gradient(w, x, y)
    literal = literal_layer_step(layers, x, y, alpha, adapt=adapt).numpy()
    p = deep_linear.implicit_preconditioner(layers, adapt)
    assert_close(deep_linear.preconditioned_step(w, g, p, alpha), literal, IDENTITY_TOL,
                 f"{adapt}: W − α unvec(P vec G)")
    ((right, left),) = deep_linear.preconditioner_factors(layers, adapt)  # (B_lᵀB_l, A_lA_lᵀ)
    closed = w - alpha * (g @ right if adapt == "head" else left @ g)  # W − αG B_LᵀB_L or W − αA_1A_1ᵀG
    assert_close(closed, literal, IDENTITY_TOL, f"{adapt}: closed form")
    if adapt == "head":
        assert np.allclose(left, np.eye(len(left)))
    else:
        assert np.allclose(right, np.eye(len(right)))


@FAST
@given(nets())
def test_preconditioner_is_symmetric_psd(net):
    layers, _, _ = make_net(*net)
    p = deep_linear.implicit_preconditioner(layers)
    assert_close(p, p.T, 1e-14, "P = Pᵀ")
    eig = np.linalg.eigvalsh(p)
    assert eig.min() >= -1e-12 * max(eig.max(), 1.0), eig


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (3, 4)])
@pytest.mark.parametrize("adapt", deep_linear.ADAPT_CHOICES)
def test_depth1_is_a_plain_gradient_step(shape, adapt):
    layers, x, y = make_net(3, [shape[1], shape[0]])
    p = deep_linear.implicit_preconditioner(layers, adapt)
    np.testing.assert_array_equal(p, np.eye(shape[0] * shape[1]))
    w = layers[0]
    g = deep_linear.squared_loss_gradient(w, x, y)
    assert_close(literal_layer_step(layers, x, y, 0.7, adapt=adapt), w - 0.7 * g, IDENTITY_TOL, "W − αG")


@pytest.mark.parametrize("dims", [[1, 1], [5, 1], [1, 5], [1, 3, 1], [4, 1, 1], [1, 1, 4], [2, 3, 1, 4, 2]])
def test_factored_step_matches_kronecker_product_on_edge_shapes(dims):
    layers, x, y = make_net(11, dims)
    w = deep_linear.end_to_end(layers)
    g = deep_linear.squared_loss_gradient(w, x, y)
    factors = deep_linear.preconditioner_factors(layers)
    p = sum(np.kron(right, left) for right, left in factors)
    explicit = w - 0.5 * (p @ g.flatten(order="F")).reshape(w.shape, order="F")
    assert_close(deep_linear.factored_step(w, g, factors, 0.5), explicit, 1e-12, "factored vs explicit Kronecker")
    p = deep_linear.implicit_preconditioner(layers)
    assert_close(deep_linear.preconditioned_step(w, g, p, 0.5), explicit, 1e-12, "P")


# -- capacity ----------------------------------------------------------------------------------
@FAST
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 4), st.data())
def test_factorize_reproduces_w(out_dim, in_dim, hidden_layers, data):
    rank = data.draw(st.integers(0, min(out_dim, in_dim)), label="rank")
    widths = data.draw(st.lists(st.integers(max(rank, 1), 6), min_size=hidden_layers,
                                max_size=hidden_layers), label="widths")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    w = rng.standard_normal((out_dim, rank)) @ rng.standard_normal((rank, in_dim))  # rank r
    layers = deep_linear.factorize(w, widths)
    assert [m.shape for m in layers] == list(zip([*widths, out_dim], [in_dim, *widths]))
    assert_close(deep_linear.end_to_end(layers), w, 1e-10, "product of factorize(W)")
    for low, high in itertools.pairwise(layers):
        assert_close(high.T @ high, low @ low.T, 1e-10, "balanced")
    assert rank <= deep_linear.function_class_rank_bound(widths, in_dim, out_dim)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1)])
def test_factorize_edge_shapes(shape):
    w = np.random.default_rng(5).standard_normal(shape)
    for widths in ([], [1], [1, 3, 1]):
        assert_close(deep_linear.end_to_end(deep_linear.factorize(w, widths)), w, 1e-12, f"{shape} through {widths}")


def test_factorize_rejects_a_width_below_rank():
    w = np.random.default_rng(2).standard_normal((4, 5))  # rank 4
    with pytest.raises(ParameterError, match="widths") as err:
        deep_linear.factorize(w, [6, 3, 5])
    assert err.value.parameter == "widths"
    layers = deep_linear.factorize(w, [4, 4])  # every width ≥ min(in, out): full capacity
    bound = deep_linear.function_class_rank_bound([4, 4], 5, 4)
    assert np.linalg.matrix_rank(deep_linear.end_to_end(layers)) == bound == 4
    assert deep_linear.function_class_rank_bound([6, 2, 7], 5, 4) == 2


# -- full depth-2 MAML: the exact expected loss ------------------------------------------------
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
    assert_close(deep_linear.depth2_post_adaptation_loss(family, [[w1]], [[w2]], alpha),
                 depth2_scalar_meta_objective(w1, w2, alpha, support, mu, task_var), 1e-12, "d = h = 1, s² = 0")


@pytest.mark.parametrize("isotropic", [True, False])
def test_depth2_loss_is_the_shallow_loss_when_w_e_is_zero_and_p_scalar(isotropic):
    """W1 = √c [I; 0], w2 = t e_{d+1} ⊥ range W1: w_e = 0 and P = (c + t²) I, a plain step of size α(c + t²)."""
    family = small_family(isotropic=isotropic)
    c, t, alpha = 0.7, 0.8, 0.35
    w1 = np.sqrt(c) * np.eye(5, 3)
    w2 = t * np.eye(1, 5, 4)
    expected = shallow_maml.post_adaptation_loss(family, np.zeros(3), alpha * (c + t**2))
    assert_close(deep_linear.depth2_post_adaptation_loss(family, w1, w2, alpha), expected, 1e-12, "w_e = 0, P ∝ I")


@pytest.mark.parametrize("support", [1, 3, math.inf])
def test_depth2_loss_at_alpha_zero_is_the_pre_adaptation_loss(support):
    family = small_family(support=support)
    w1, w2 = random_depth2(1, 4)
    assert_close(deep_linear.depth2_post_adaptation_loss(family, w1, w2, 0.0),
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
    assert_close(deep_linear.depth2_post_adaptation_loss(family, w1, w2, 0.6), 0.5 * (r @ sx @ r + 0.3), 1e-12,
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
        return (deep_linear.depth2_post_adaptation_loss(family, w1, w2, alpha)
                - deep_linear.first_order_surrogate_loss(family, [w1, w2], alpha))

    def surrogate(alpha):  # a quadratic in α
        return deep_linear.first_order_surrogate_loss(family, [w1, w2], alpha)

    coef = deep_linear.depth2_loss_polynomial(family, w1, w2)
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
    z, w = deep_linear.gaussian_cubature(rank)
    assert len(z) == 2 * rank**2 + 1
    for powers in itertools.product(range(6), repeat=min(rank, 2)):
        if sum(powers) <= 5:
            exact = np.prod([sp.factorial2(p - 1) if p % 2 == 0 else 0 for p in powers])
            assert abs(np.sum(w * np.prod(z[:, : len(powers)] ** np.array(powers), axis=1)) - exact) < 1e-12


def test_depth2_best_post_loss_lies_between_the_bayes_floor_and_the_shallow_step():
    family = LinearTaskFamily.subspace(4, 3, 10, rank=2, noise_var=0.1, seed=2)
    alpha = shallow_maml.optimal_step_size(family)
    value, w1, w2, method = deep_linear.depth2_best_post_loss(family, 2, alpha, restarts=2)
    assert w1.shape == (2, 4) and w2.shape == (1, 2) and method.startswith("numerical")
    assert value == deep_linear.depth2_post_adaptation_loss(family, w1, w2, alpha)
    # W1 = 0, ‖w2‖ = 1 is a plain step of size α from w_e = 0 = μ, so the minimum is at most that
    assert value <= shallow_maml.post_adaptation_loss(family, np.zeros(4), alpha) + 1e-12
    assert value < shallow_maml.pre_adaptation_loss(family, family.task_mean)
    assert value >= bayes_optimal_loss(family).value


# -- bad inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("call, parameter", [
    (lambda: deep_linear.end_to_end([]), "layers"),
    (lambda: deep_linear.end_to_end([np.ones((3, 2)), np.ones((2, 2))]), "layers[1]"),
    (lambda: deep_linear.end_to_end([np.ones(3)]), "layers[0]"),
    (lambda: deep_linear.implicit_preconditioner([np.ones((2, 2))], adapt="middle"), "adapt"),
    (lambda: deep_linear.depth2_update(np.ones((3, 2)), np.ones((1, 3)), np.ones((1, 3)), 0.1), "g"),
    (lambda: deep_linear.preconditioned_step(np.ones((2, 3)), np.ones((2, 3)), np.eye(5), 0.1), "p"),
    (lambda: deep_linear.preconditioned_step(np.ones((2, 3)), np.ones((3, 2)), np.eye(6), 0.1), "g"),
    (lambda: deep_linear.factored_step(np.ones((2, 3)), np.ones((2, 3)), [(np.eye(2), np.eye(2))], 0.1),
     "factors[0][0]"),
    (lambda: deep_linear.layer_gradients([np.ones((2, 3))], np.ones((3, 2))), "g"),
    (lambda: deep_linear.squared_loss_gradient(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 3))), "y"),
    (lambda: deep_linear.squared_loss(np.ones((2, 3)), np.ones((4, 2)), np.ones((4, 2))), "x"),
    (lambda: deep_linear.factorize(np.ones((2, 2)), [0]), "widths[0]"),
    (lambda: deep_linear.factorize(np.ones((2, 2)), "22"), "widths"),
    (lambda: deep_linear.function_class_rank_bound([2], 0, 3), "in_dim"),
    (lambda: literal_layer_step([np.ones((1, 3))], np.ones((4, 3)), np.ones(4), 0.1, loss="hinge"), "loss"),
    (lambda: literal_layer_step([np.ones((1, 3))], np.ones((4, 3)), np.ones(4), 0.1, adapt="mid"), "adapt"),
    (lambda: literal_layer_step([np.ones((1, 3))], np.ones((4, 2)), np.ones(4), 0.1), "x"),
    (lambda: literal_layer_step([np.ones((2, 3))], np.ones((4, 3)), np.ones(4), 0.1), "y"),
    (lambda: literal_layer_step([np.ones((2, 3)), np.ones((1, 3))], np.ones((4, 3)), np.ones(4), 0.1),
     "layers[1]"),
    (lambda: deep_linear.depth2_post_adaptation_loss(small_family(), np.ones((2, 4)), np.ones((1, 2)), 0.1), "w1"),
    (lambda: deep_linear.depth2_post_adaptation_loss(small_family(), np.ones((2, 3)), np.ones((2, 2)), 0.1), "w2"),
    (lambda: deep_linear.depth2_post_adaptation_loss(small_family(), np.ones((2, 3)), np.ones((1, 3)), 0.1),
     "layers[1]"),
    (lambda: deep_linear.depth2_post_adaptation_loss(small_family(), np.ones((2, 3)), np.ones((1, 2)), np.nan),
     "alpha"),
    (lambda: deep_linear.depth2_best_post_loss(small_family(), 0, 0.1), "width"),
    (lambda: deep_linear.depth2_best_post_loss(small_family(), 2, 0.1, restarts=0), "restarts"),
    (lambda: deep_linear.first_order_surrogate_loss(small_family(), [np.ones((2, 3))], 0.1), "layers"),
    (lambda: deep_linear.gaussian_cubature(0), "rank"),
])
def test_bad_inputs_raise_parameter_error_naming_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as err:
        call()
    assert err.value.parameter == parameter
    assert str(err.value).startswith(parameter)


@pytest.mark.parametrize("check", REGISTRY["deep_linear"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("deep_linear.") and result.passed, result
