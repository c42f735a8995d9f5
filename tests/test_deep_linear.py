"""theory.deep_linear against its autograd twin simulations.layerwise_update (float64 identities).

The twin takes a literal gradient step on every adapted layer with torch.autograd; the theory gives
the exact depth-2 update, the implicit preconditioner P and the exact single-layer steps.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
import sympy as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from simulations.layerwise_update import (
    end_to_end_gradient_autograd,
    layer_gradients_autograd,
    literal_layer_step,
)
from tests.helpers import assert_close
from theory import deep_linear as dl
from theory.errors import ParameterError

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None)
IDENTITY_TOL = 1e-10  # float64 identities: sympy / closed form against autograd


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


def d_step_d_alpha(layers, x, y, adapt: str, loss: str = "squared") -> np.ndarray:
    """dW'/dα at α = 0 of the literal step, by reverse-mode autograd through the twin, (out, in)."""
    zero = torch.zeros((), dtype=torch.float64)
    return torch.autograd.functional.jacobian(
        lambda a: literal_layer_step(layers, x, y, a, loss=loss, adapt=adapt), zero).numpy()


def first_order(layers, g, adapt: str) -> np.ndarray:
    """−unvec(P vec G) from the explicit preconditioner, (out, in)."""
    return dl.preconditioned_step(np.zeros_like(g), g, dl.implicit_preconditioner(layers, adapt), 1.0)


# -- end-to-end map, gradients -----------------------------------------------------------------
@FAST
@given(nets())
def test_gradients_match_autograd(net):
    layers, x, y = make_net(*net)
    w = dl.end_to_end(layers)
    assert_close(w, np.linalg.multi_dot([np.eye(w.shape[0]), *layers[::-1]]), 1e-12, "W = W_L ⋯ W_1")
    g = dl.squared_loss_gradient(w, x, y)
    assert_close(g, end_to_end_gradient_autograd(w, x, y, "squared"), IDENTITY_TOL, "G")
    for i, (ours, auto) in enumerate(zip(dl.layer_gradients(layers, g), layer_gradients_autograd(layers, x, y))):
        assert_close(ours, auto, IDENTITY_TOL, f"∂L/∂W_{i + 1} = A_lᵀ G B_lᵀ")


# -- exact depth-2 update ----------------------------------------------------------------------
def test_depth2_symbolic_expansion_is_the_stated_form():
    w1, w2, g, alpha = dl.depth2_symbols()
    stated = w2 * w1 - alpha * (w2 * w2.T * g + g * w1.T * w1) + alpha**2 * g * w1.T * w2.T * g
    assert (dl.depth2_update_symbolic() - stated).expand() == sp.ZeroMatrix(*stated.shape)
    orders = dl.depth2_update_by_order()
    assert sorted(orders) == [0, 1, 2]
    assert (orders[1] + w2 * w2.T * g + g * w1.T * w1).expand() == sp.ZeroMatrix(*stated.shape)
    latex = dl.latex_depth2_update()
    assert latex.startswith("W' = W_{2} W_{1} - \\alpha") and "\\alpha^{2}" in latex
    assert "\\otimes" in dl.latex_implicit_preconditioner()


DEPTH2_LAMBDA = sp.lambdify(dl.depth2_symbols(), dl.depth2_update_symbolic(), "numpy")


@FAST
@given(nets(min_depth=2, max_depth=2), st.floats(-2.0, 2.0))
def test_depth2_exact_update_matches_literal_step(net, alpha):
    layers, x, y = make_net(*net)
    g = dl.squared_loss_gradient(dl.end_to_end(layers), x, y)
    literal = literal_layer_step(layers, x, y, alpha, loss="squared").numpy()
    assert_close(dl.depth2_update(*layers, g, alpha), literal, IDENTITY_TOL, "numeric W'")
    assert_close(DEPTH2_LAMBDA(*layers, g, alpha), literal, IDENTITY_TOL, "lambdified sympy W'")


# -- first order: the implicit preconditioner --------------------------------------------------
@FAST
@given(nets(), st.sampled_from(dl.ADAPT_CHOICES))
def test_first_order_step_is_the_preconditioned_gradient(net, adapt):
    layers, x, y = make_net(*net)
    g = dl.squared_loss_gradient(dl.end_to_end(layers), x, y)
    expected = first_order(layers, g, adapt)
    assert_close(d_step_d_alpha(layers, x, y, adapt), expected, IDENTITY_TOL, "dW'/dα at 0 (autograd)")
    h = 1e-5  # central difference: error h²|W'''| + eps/h, both far below 1e-7
    central = (literal_layer_step(layers, x, y, h, adapt=adapt)
               - literal_layer_step(layers, x, y, -h, adapt=adapt)).numpy() / (2 * h)
    assert_close(central, expected, 1e-7, "central difference of W'(α)")
    assert_close(dl.factored_step(np.zeros_like(g), g, dl.preconditioner_factors(layers, adapt), 1.0),
                 expected, IDENTITY_TOL, "Σ_l A_lA_lᵀ G B_lᵀB_l")


def test_remainder_is_second_order_in_alpha():
    """‖W'(α) − W − α dW'/dα‖ shrinks 4× when α halves (all layers adapt, depth 3)."""
    layers, x, y = make_net(7, [4, 3, 5, 2])
    w = dl.end_to_end(layers)
    slope = first_order(layers, dl.squared_loss_gradient(w, x, y), "all")

    def remainder(a):
        return np.linalg.norm(literal_layer_step(layers, x, y, a).numpy() - w - a * slope)

    ratios = [remainder(a) / remainder(a / 2) for a in (1e-2, 1e-3)]
    assert all(3.9 < r < 4.1 for r in ratios), ratios


@FAST
@given(nets(), st.sampled_from(["top", "bottom"]))
def test_single_layer_step_is_exact_at_finite_alpha(net, adapt):
    layers, x, y = make_net(*net)
    alpha = 0.3
    w = dl.end_to_end(layers)
    g = dl.squared_loss_gradient(w, x, y)
    literal = literal_layer_step(layers, x, y, alpha, adapt=adapt).numpy()
    p = dl.implicit_preconditioner(layers, adapt)
    assert_close(dl.preconditioned_step(w, g, p, alpha), literal, IDENTITY_TOL, f"{adapt}: W − α unvec(P vec G)")
    ((right, left),) = dl.preconditioner_factors(layers, adapt)  # (B_lᵀB_l, A_lA_lᵀ)
    closed = w - alpha * (g @ right if adapt == "top" else left @ g)  # W − αG B_LᵀB_L or W − αA_1A_1ᵀG
    assert_close(closed, literal, IDENTITY_TOL, f"{adapt}: closed form")
    if adapt == "top":
        assert np.allclose(left, np.eye(len(left)))
    else:
        assert np.allclose(right, np.eye(len(right)))


@FAST
@given(nets())
def test_preconditioner_is_symmetric_psd(net):
    layers, _, _ = make_net(*net)
    p = dl.implicit_preconditioner(layers)
    assert_close(p, p.T, 1e-14, "P = Pᵀ")
    eig = np.linalg.eigvalsh(p)
    assert eig.min() >= -1e-12 * max(eig.max(), 1.0), eig


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (5, 1), (3, 4)])
@pytest.mark.parametrize("adapt", dl.ADAPT_CHOICES)
def test_depth1_is_a_plain_gradient_step(shape, adapt):
    layers, x, y = make_net(3, [shape[1], shape[0]])
    p = dl.implicit_preconditioner(layers, adapt)
    np.testing.assert_array_equal(p, np.eye(shape[0] * shape[1]))
    w = layers[0]
    g = dl.squared_loss_gradient(w, x, y)
    assert_close(literal_layer_step(layers, x, y, 0.7, adapt=adapt), w - 0.7 * g, IDENTITY_TOL, "W − αG")


@pytest.mark.parametrize("dims", [[1, 1], [5, 1], [1, 5], [1, 3, 1], [4, 1, 1], [1, 1, 4], [2, 3, 1, 4, 2]])
def test_factored_step_matches_kronecker_product_on_edge_shapes(dims):
    layers, x, y = make_net(11, dims)
    w = dl.end_to_end(layers)
    g = dl.squared_loss_gradient(w, x, y)
    factors = dl.preconditioner_factors(layers)
    p = sum(np.kron(right, left) for right, left in factors)
    explicit = w - 0.5 * (p @ g.flatten(order="F")).reshape(w.shape, order="F")
    assert_close(dl.factored_step(w, g, factors, 0.5), explicit, 1e-12, "factored vs explicit Kronecker")
    assert_close(dl.preconditioned_step(w, g, dl.implicit_preconditioner(layers), 0.5), explicit, 1e-12, "P")


# -- capacity ----------------------------------------------------------------------------------
@FAST
@given(st.integers(1, 5), st.integers(1, 5), st.integers(0, 4), st.data())
def test_factorize_reproduces_w(out_dim, in_dim, hidden_layers, data):
    rank = data.draw(st.integers(0, min(out_dim, in_dim)), label="rank")
    widths = data.draw(st.lists(st.integers(max(rank, 1), 6), min_size=hidden_layers,
                                max_size=hidden_layers), label="widths")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    w = rng.standard_normal((out_dim, rank)) @ rng.standard_normal((rank, in_dim))  # rank r
    layers = dl.factorize(w, widths)
    assert [m.shape for m in layers] == list(zip([*widths, out_dim], [in_dim, *widths]))
    assert_close(dl.end_to_end(layers), w, 1e-10, "product of factorize(W)")
    for low, high in itertools.pairwise(layers):
        assert_close(high.T @ high, low @ low.T, 1e-10, "balanced")
    assert rank <= dl.function_class_rank_bound(widths, in_dim, out_dim)


@pytest.mark.parametrize("shape", [(1, 1), (1, 6), (6, 1)])
def test_factorize_edge_shapes(shape):
    w = np.random.default_rng(5).standard_normal(shape)
    for widths in ([], [1], [1, 3, 1]):
        assert_close(dl.end_to_end(dl.factorize(w, widths)), w, 1e-12, f"{shape} through {widths}")


def test_factorize_rejects_a_width_below_rank():
    w = np.random.default_rng(2).standard_normal((4, 5))  # rank 4
    with pytest.raises(ParameterError, match="widths") as err:
        dl.factorize(w, [6, 3, 5])
    assert err.value.parameter == "widths"
    layers = dl.factorize(w, [4, 4])  # every width ≥ min(in, out): full capacity
    assert np.linalg.matrix_rank(dl.end_to_end(layers)) == dl.function_class_rank_bound([4, 4], 5, 4) == 4
    assert dl.function_class_rank_bound([6, 2, 7], 5, 4) == 2


# -- bad inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("call, parameter", [
    (lambda: dl.end_to_end([]), "layers"),
    (lambda: dl.end_to_end([np.ones((3, 2)), np.ones((2, 2))]), "layers[1]"),
    (lambda: dl.end_to_end([np.ones(3)]), "layers[0]"),
    (lambda: dl.implicit_preconditioner([np.ones((2, 2))], adapt="middle"), "adapt"),
    (lambda: dl.depth2_update(np.ones((3, 2)), np.ones((1, 3)), np.ones((1, 3)), 0.1), "g"),
    (lambda: dl.preconditioned_step(np.ones((2, 3)), np.ones((2, 3)), np.eye(5), 0.1), "p"),
    (lambda: dl.preconditioned_step(np.ones((2, 3)), np.ones((3, 2)), np.eye(6), 0.1), "g"),
    (lambda: dl.factored_step(np.ones((2, 3)), np.ones((2, 3)), [(np.eye(2), np.eye(2))], 0.1), "factors[0][0]"),
    (lambda: dl.layer_gradients([np.ones((2, 3))], np.ones((3, 2))), "g"),
    (lambda: dl.squared_loss_gradient(np.ones((2, 3)), np.ones((4, 3)), np.ones((4, 3))), "y"),
    (lambda: dl.squared_loss(np.ones((2, 3)), np.ones((4, 2)), np.ones((4, 2))), "x"),
    (lambda: dl.factorize(np.ones((2, 2)), [0]), "widths[0]"),
    (lambda: dl.factorize(np.ones((2, 2)), "22"), "widths"),
    (lambda: dl.function_class_rank_bound([2], 0, 3), "in_dim"),
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
