"""theory.logistic against sympy and its autograd twins simulations/twins/logistic.py (float64 identities).

The logistic gradient closed form is held against sympy.diff of the symbolic loss and against
torch.autograd; the deep classifier's literal step against the implicit preconditioner of
theory.deep_linear, which holds for any loss of the end-to-end map.
"""
from __future__ import annotations

import numpy as np
import pytest
import sympy as sp
from hypothesis import example, given, settings
from hypothesis import strategies as st

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.twins.deep_linear import first_order_change_central, literal_layer_step
from simulations.twins.logistic import deep_logistic_first_order_step_autograd, logistic_gradient_autograd
from tests.helpers import IDENTITY_TOL, assert_close
from theory import deep_linear, logistic
from theory.ground.errors import ParameterError

FAST = settings(max_examples=25, deadline=None, derandomize=True, database=None)


@st.composite
def classifiers(draw, min_depth: int = 1, max_depth: int = 4):
    """(seed, dims) with dims = [d, h_1, …, h_{L-1}, 1] for a random deep linear classifier."""
    depth = draw(st.integers(min_depth, max_depth))
    widths = draw(st.lists(st.integers(1, 5), min_size=depth, max_size=depth))
    return draw(st.integers(0, 2**32 - 1)), [*widths, 1]


def make_classifier(seed: int, dims: list[int], k: int = 7, scale: float = 1.0):
    """Layers W_l ~ N(0, scale²/h_{l-1}) (bottom first), inputs x (K, d) and labels y (K,) in ±1."""
    rng = np.random.default_rng(seed)
    layers = [scale * rng.standard_normal((dims[i + 1], dims[i])) / np.sqrt(dims[i])
              for i in range(len(dims) - 1)]
    return layers, rng.standard_normal((k, dims[0])), rng.choice([-1.0, 1.0], size=k)


# -- loss and gradient -------------------------------------------------------------------------
def test_loss_is_a_stable_softplus():
    x = np.array([[1.0], [1.0], [-2.0]])
    y = np.array([1.0, -1.0, 1.0])
    w = np.array([0.3])
    margins = y * (x @ w)
    assert np.isclose(logistic.logistic_loss(w, x, y), np.mean(np.log1p(np.exp(-margins))), rtol=1e-14, atol=0)
    big = np.array([800.0])  # margins ±800 and −1600: exp would overflow
    assert np.isclose(logistic.logistic_loss(big, x, y), (800.0 + 1600.0) / 3, rtol=1e-14, atol=0)
    # σ(−m) = (0, 1, 1): ∇L = −(1/3)(−1·1 + 1·(−2)) = 1
    assert_close(logistic.logistic_gradient(big, x, y), np.array([1.0]), 1e-14, "saturated gradient")


@FAST
@given(st.integers(1, 6), st.integers(1, 8), st.floats(0.1, 30.0), st.integers(0, 2**32 - 1))
@example(2, 5, 11.0, 48)  # a margin of 20.2: torch's softplus (linear above 20) once made the twin's slope 1, not σ
def test_gradient_matches_autograd(d, k, scale, seed):
    rng = np.random.default_rng(seed)
    w, x, y = scale * rng.standard_normal(d), rng.standard_normal((k, d)), rng.choice([-1.0, 1.0], size=k)
    auto = logistic_gradient_autograd(w[None, :], x, y)  # (1, d)
    assert_close(logistic.end_to_end_gradient(w[None, :], x, y), auto, IDENTITY_TOL, "G = ∂L/∂W")
    assert_close(logistic.logistic_gradient(w, x, y), auto[0], IDENTITY_TOL, "∇L(w)")


@pytest.mark.parametrize("d, k", [(1, 1), (2, 2), (3, 2), (2, 3)])
def test_symbolic_gradient_is_the_closed_form(d, k):
    sym = logistic.logistic_gradient_symbolic(d, k)
    assert sp.simplify(sym.derived - sym.closed_form) == sp.zeros(d, 1)
    rng = np.random.default_rng(d * 10 + k)
    w, x, y = rng.standard_normal(d), rng.standard_normal((k, d)), rng.choice([-1.0, 1.0], size=k)
    derived = sp.lambdify([list(sym.w), list(sym.x), list(sym.y)], sym.derived, "numpy")
    assert_close(np.ravel(derived(w, x.ravel(), y)), logistic.logistic_gradient(w, x, y), 1e-12,
                 "lambdified sympy.diff vs numeric closed form")


def test_latex_gradient():
    latex = logistic.latex_logistic_gradient()
    assert latex.startswith("\\nabla_w L(w) = -\\frac{1}{K}") and "\\sigma" in latex


# -- deep linear classifier: the same implicit preconditioner ----------------------------------
@FAST
@given(classifiers(), st.sampled_from(deep_linear.ADAPT_CHOICES))
def test_first_order_step_is_the_preconditioned_gradient(net, adapt):
    layers, x, y = make_classifier(*net)
    expected = logistic.deep_logistic_first_order_step(layers, x, y, adapt)  # (1, d)
    slope = deep_logistic_first_order_step_autograd(layers, x, y, adapt)
    assert_close(slope, expected, IDENTITY_TOL, "dW'/dα at 0 (autograd)")
    # central difference at h = 1e-5: error h²|W'''| + eps/h, both far below 1e-7
    central = first_order_change_central(layers, x, y, loss="logistic", adapt=adapt)
    assert_close(central, expected, 1e-7, "central difference of W'(α)")


@FAST
@given(classifiers(), st.sampled_from(["head", "bottom"]))
def test_single_layer_step_is_exact_at_finite_alpha(net, adapt):
    layers, x, y = make_classifier(*net)
    alpha = 0.3
    literal = literal_layer_step(layers, x, y, alpha, loss="logistic", adapt=adapt).numpy()
    exact = deep_linear.end_to_end(layers) + alpha * logistic.deep_logistic_first_order_step(layers, x, y, adapt)
    assert_close(exact, literal, IDENTITY_TOL, f"{adapt}: W − α unvec(P vec G)")


DEPTH2_LAMBDA = sp.lambdify(deep_linear.depth2_symbols(), deep_linear.depth2_update_symbolic(), "numpy")


@FAST
@given(classifiers(min_depth=2, max_depth=2), st.floats(-2.0, 2.0))
def test_depth2_exact_update_matches_literal_step(net, alpha):
    layers, x, y = make_classifier(*net, scale=2.0)
    g = logistic.end_to_end_gradient(deep_linear.end_to_end(layers), x, y)  # (1, d)
    literal = literal_layer_step(layers, x, y, alpha, loss="logistic").numpy()
    assert_close(deep_linear.depth2_update(*layers, g, alpha), literal, IDENTITY_TOL, "numeric W'")
    assert_close(DEPTH2_LAMBDA(*layers, g, alpha), literal, IDENTITY_TOL, "lambdified sympy W'")


def test_shallow_classifier_takes_a_plain_gradient_step():
    layers, x, y = make_classifier(4, [5, 1])
    w = layers[0]
    assert_close(logistic.deep_logistic_first_order_step(layers, x, y), -logistic.end_to_end_gradient(w, x, y),
                 1e-15, "−G")
    literal = literal_layer_step(layers, x, y, 0.9, loss="logistic").numpy()
    assert_close(literal, w - 0.9 * logistic.end_to_end_gradient(w, x, y), IDENTITY_TOL, "W − αG")


# -- bad inputs --------------------------------------------------------------------------------
@pytest.mark.parametrize("call, parameter", [
    (lambda: logistic.logistic_loss(np.ones(2), np.ones((3, 2)), np.array([1.0, 0.0, -1.0])), "y"),
    (lambda: logistic.logistic_gradient(np.ones(2), np.ones((3, 2)), np.ones(4)), "y"),
    (lambda: logistic.logistic_gradient(np.ones(2), np.ones((3, 3)), np.ones(3)), "x"),
    (lambda: logistic.logistic_gradient(np.ones((1, 2)), np.ones((3, 2)), np.ones(3)), "w"),
    (lambda: logistic.end_to_end_gradient(np.ones((2, 2)), np.ones((3, 2)), np.ones(3)), "w"),
    (lambda: logistic.logistic_gradient_symbolic(0, 2), "d"),
    (lambda: logistic.deep_logistic_first_order_step([np.ones((2, 3))], np.ones((4, 3)), np.ones(4)), "layers"),
    (lambda: logistic.deep_logistic_first_order_step([np.ones((1, 3))], np.ones((4, 3)), np.ones(4), "x"), "adapt"),
    (lambda: literal_layer_step([np.ones((2, 3))], np.ones((4, 3)), np.ones(4), 0.1, loss="logistic"),
     "layers"),
    (lambda: literal_layer_step([np.ones((1, 3))], np.ones((4, 3)), np.ones((4, 1)), 0.1, loss="logistic"),
     "y"),
])
def test_bad_inputs_raise_parameter_error_naming_the_parameter(call, parameter):
    with pytest.raises(ParameterError) as err:
        call()
    assert err.value.parameter == parameter
    assert str(err.value).startswith(parameter)


@pytest.mark.parametrize("check", REGISTRY["logistic"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("logistic.") and result.passed, result
