"""theory.deep_linear against its autograd twin simulations/twins/deep_linear.py (float64 identities).

The twin takes a literal gradient step on every adapted layer with torch.autograd; the theory gives
the exact depth-2 update, the implicit preconditioner P and the exact single-layer steps.
"""
from __future__ import annotations

import itertools

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
from tests.helpers import IDENTITY_TOL, assert_close
from theory import deep_linear
from theory.ground.errors import ParameterError

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
