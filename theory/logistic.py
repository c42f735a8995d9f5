"""Logistic regression on a task, and the first-order layerwise step of a deep linear classifier.

Setting (derived here): labels y_i ∈ {−1, +1}, inputs x_i ∈ R^d, K support points,
    L(w) = (1/K) Σ_i log(1 + exp(−y_i wᵀx_i)),
    ∇L(w) = −(1/K) Σ_i y_i σ(−y_i wᵀx_i) x_i,   σ(t) = 1 / (1 + e^{−t}).
The implicit-preconditioner identity of ``theory.deep_linear`` holds for any loss of the end-to-end
map, so a deep linear classifier W = W_L ⋯ W_1 of shape (1, d) moves, per unit α and to first order,
by −unvec(P vec G) with G = ∇L of the end-to-end map.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import sympy as sp
from scipy.special import expit

from theory.deep_linear import end_to_end, implicit_preconditioner
from theory.ground.errors import ParameterError, require_int


def logistic_loss(w, x, y) -> float:
    """Logistic loss L(w) = (1/K) Σ_i log(1 + exp(−y_i wᵀx_i)), with a stable softplus.

    ``w`` is (d,), ``x`` is (K, d), ``y`` is (K,) with entries ±1; log(1 + e^t) = logaddexp(0, t).
    """
    w, x, y = _check_inputs(w, x, y)
    margins = y * (x @ w)  # (K,)
    return float(np.mean(np.logaddexp(0.0, -margins)))


def logistic_gradient(w, x, y) -> np.ndarray:
    """Gradient of the logistic loss, ∇L(w) = −(1/K) Σ_i y_i σ(−y_i wᵀx_i) x_i, (d,)."""
    w, x, y = _check_inputs(w, x, y)
    margins = y * (x @ w)  # (K,)
    weights = y * expit(-margins)  # (K,), y_i σ(−y_i wᵀx_i), no overflow for any margin
    return -(weights @ x) / x.shape[0]  # (d,)


def end_to_end_gradient(w, x, y) -> np.ndarray:
    """End-to-end gradient G = ∂L/∂W of the logistic loss of the map W (1, d): G = ∇L(W[0])ᵀ, (1, d)."""
    w = np.asarray(w, dtype=float)
    if w.ndim != 2 or w.shape[0] != 1:
        raise ParameterError("w", w.shape, "a (1, d) end-to-end map (one logit)")
    return logistic_gradient(w[0], x, y)[None, :]  # (1, d)


def _check_inputs(w, x, y) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    w = np.asarray(w, dtype=float)
    if w.ndim != 1:
        raise ParameterError("w", w.shape, "a weight vector of shape (d,)")
    x = np.asarray(x, dtype=float)
    if x.ndim != 2 or x.shape[1] != w.shape[0] or x.shape[0] < 1:
        raise ParameterError("x", x.shape, f"shape (K, {w.shape[0]}) with K >= 1")
    y = np.asarray(y, dtype=float)
    if y.shape != (x.shape[0],):
        raise ParameterError("y", y.shape, f"shape ({x.shape[0]},) = (K,)")
    if not np.all(np.abs(y) == 1.0):
        raise ParameterError("y", np.unique(y).tolist(), "labels in {-1, +1}")
    return w, x, y


# -- symbolic check ----------------------------------------------------------------------------
class SymbolicGradient(NamedTuple):
    """The logistic gradient derived by sympy next to the closed form, on the same symbols."""

    derived: sp.Matrix  # (d, 1), ∂L/∂w_j by sympy.diff of the symbolic loss
    closed_form: sp.Matrix  # (d, 1), −(1/K) Σ_i y_i σ(−y_i wᵀx_i) x_i
    w: sp.Matrix  # (d, 1) weight symbols
    x: sp.Matrix  # (K, d) input symbols
    y: sp.Matrix  # (K, 1) label symbols


def logistic_gradient_symbolic(d: int, k: int) -> SymbolicGradient:
    """Symbolic logistic gradient for concrete d and K: sympy.diff of L(w) beside the closed form.

    L(w) = (1/K) Σ_i log(1 + exp(−y_i Σ_j w_j x_ij)) with symbols w_j, x_ij, y_i;
    ``simplify(derived − closed_form)`` is the zero vector.
    """
    d, k = require_int("d", d, 1), require_int("k", k, 1)
    w = sp.Matrix(sp.symbols(f"w0:{d}", real=True))  # (d, 1)
    x = sp.Matrix(k, d, sp.symbols(f"x0:{k}_0:{d}", real=True))  # (K, d)
    y = sp.Matrix(sp.symbols(f"y0:{k}", real=True))  # (K, 1)
    margins = [y[i] * (x[i, :] * w)[0] for i in range(k)]
    loss = sp.Rational(1, k) * sum(sp.log(1 + sp.exp(-m)) for m in margins)
    derived = sp.Matrix([sp.diff(loss, wj) for wj in w])  # (d, 1)

    def sigma(t):
        return 1 / (1 + sp.exp(-t))

    closed = -sp.Rational(1, k) * sum((y[i] * sigma(-margins[i]) * x[i, :].T for i in range(k)),
                                      sp.zeros(d, 1))  # (d, 1)
    return SymbolicGradient(derived, closed, w, x, y)


def latex_logistic_gradient() -> str:
    """LaTeX of the logistic loss gradient with labels ±1."""
    return (r"\nabla_w L(w) = -\frac{1}{K} \sum_{i=1}^{K} y_i\, \sigma\!\left(-y_i w^\top x_i\right) x_i, "
            r"\quad \sigma(t) = \frac{1}{1 + e^{-t}}")


# -- deep linear classifier --------------------------------------------------------------------
def deep_logistic_first_order_step(layers, x, y, adapt: str = "all") -> np.ndarray:
    """First-order change of a deep linear classifier's map per unit α, −unvec(P vec G), (1, d).

    W' = W − α unvec(P vec G) + O(α²), P = Σ_l (B_lᵀB_l) ⊗ (A_lA_lᵀ) from
    ``deep_linear.implicit_preconditioner`` and G the logistic end-to-end gradient at W = W_L ⋯ W_1.
    With adapt = "head" or "bottom" the step is exactly linear in α.
    """
    w = end_to_end(layers)  # (1, d)
    if w.shape[0] != 1:
        raise ParameterError("layers", f"out = {w.shape[0]}", "a top layer with one output (a logit)")
    g = end_to_end_gradient(w, x, y)  # (1, d)
    p = implicit_preconditioner(layers, adapt)  # (d, d), out = 1
    return -(p @ g.reshape(-1, order="F")).reshape(w.shape, order="F")
