"""MAML on the depth-2 scalar model f(x) = w₂w₁x (d = 1): the exact one-step meta-objective.

Setting (README, "The task family", with d = 1, Σx = 1, s² = 0): x ~ N(0, 1), w_τ ~ N(μ, σ²),
y = w_τ x, K support points, one inner step of size α on *both* layers. With W = w₁w₂,
e = W − w_τ and ŝ = (1/K) Σ x_i², the support loss is ½ŝe², its layer gradients are
∂/∂w₁ = w₂g and ∂/∂w₂ = w₁g with g = ŝe, and the adapted end-to-end weight is exactly

    W' = (w₁ − αw₂g)(w₂ − αw₁g) = W − α(w₁² + w₂²) g + α² w₁w₂ g²        (derived here).

The query loss is ½E[(W' − w_τ)²] (x on the query set is independent and E x² = 1), so

    L(w₁, w₂) = ½ E[(e − α(w₁² + w₂²) ŝe + α² w₁w₂ ŝ²e²)²],

a polynomial expectation over two independent variables: Kŝ ~ χ²_K, so
E ŝ^m = Π_{j<m} (K + 2j) / K^m, and e ~ N(W − μ, σ²) with its Gaussian raw moments.
sympy expands the square and replaces every monomial ŝ^m e^n by its expectation.

The shallow twin is f(x) = wx with w' = w − αŝe: theory.shallow_maml.post_adaptation_loss
on a ``LinearTaskFamily`` with dim = 1. The depth-2 model's first-order step is the shallow one
with the step size α(w₁² + w₂²): its layers set their own effective step (and w₁w₂ fixes W),
so on the hyperbola W = const the meta-objective prefers the layer balance whose effective
step is best.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory.ground.errors import require_int, require_real

W1, W2, ALPHA, K_SYM, MU, TASK_VAR = sp.symbols("w_1 w_2 alpha K mu sigma^2", real=True)
_S_HAT, _E, _W_TAU = sp.symbols("s_hat e w_tau", real=True)


@cache
def depth2_scalar_update_symbolic() -> tuple[sp.Expr, sp.Expr]:
    """(w₁', w₂') after one step on the support loss ½ŝ(w₁w₂ − w_τ)², by sympy differentiation."""
    support_loss = sp.Rational(1, 2) * _S_HAT * (W1 * W2 - _W_TAU) ** 2
    return W1 - ALPHA * sp.diff(support_loss, W1), W2 - ALPHA * sp.diff(support_loss, W2)


def _chi2_moment(m: int) -> sp.Expr:
    """E ŝ^m = Π_{j<m} (K + 2j) / K^m for Kŝ ~ χ²_K."""
    return sp.Mul(*[(K_SYM + 2 * j) for j in range(m)]) / K_SYM**m


def _gaussian_moment(n: int, mean: sp.Expr, var: sp.Expr) -> sp.Expr:
    """E e^n for e ~ N(mean, var): Σ_{k even} C(n, k) mean^{n−k} var^{k/2} (k − 1)!!."""
    return sum(sp.binomial(n, k) * mean ** (n - k) * var ** (k // 2) * sp.factorial2(k - 1)
               for k in range(0, n + 1, 2))


@cache
def depth2_scalar_meta_objective_expression() -> sp.Expr:
    """L(w₁, w₂; α, K, μ, σ²) = ½E[(w₁'w₂' − w_τ)²], the exact depth-2 scalar meta-objective (module doc).

    Symbols: ``W1, W2, ALPHA, K_SYM, MU, TASK_VAR`` of this module.
    """
    w1_new, w2_new = depth2_scalar_update_symbolic()
    residual = sp.expand((w1_new * w2_new - _W_TAU).subs(_W_TAU, W1 * W2 - _E))  # in ŝ and e
    poly = sp.Poly(sp.expand(residual**2), _S_HAT, _E)
    mean_e = W1 * W2 - MU
    expectation = sum(coeff * _chi2_moment(m) * _gaussian_moment(n, mean_e, TASK_VAR)
                      for (m, n), coeff in poly.terms())
    return sp.expand(sp.Rational(1, 2) * expectation)


@cache
def _objective_function():
    expr = depth2_scalar_meta_objective_expression()
    return sp.lambdify((W1, W2, ALPHA, K_SYM, MU, TASK_VAR), expr, "numpy")


def depth2_scalar_meta_objective(w1, w2, alpha: float, support: int, mu: float, task_var: float):
    """Expected post-adaptation query loss of f(x) = w₂w₁x after one step on both layers (module doc).

    ``w1`` and ``w2`` may be arrays (broadcast together, e.g. a contour grid); returns a float
    for scalars, else an array of the broadcast shape.
    """
    alpha = require_real("alpha", alpha)
    support = require_int("support", support, 1)
    mu, task_var = require_real("mu", mu), require_real("task_var", task_var, 0.0)
    w1, w2 = np.broadcast_arrays(np.asarray(w1, float), np.asarray(w2, float))
    value = _objective_function()(w1, w2, alpha, support, mu, task_var)
    value = np.broadcast_to(np.asarray(value, float), w1.shape)
    return float(value) if value.ndim == 0 else value.copy()


def depth2_scalar_minima(alpha: float, support: int, mu: float, task_var: float,
                         span: float = 3.0, grid: int = 121) -> list[tuple[float, float, float]]:
    """Global minima (w₁, w₂, L) in [−span, span]²: a grid search polished by BFGS (numerical).

    L is invariant under w₁ ↔ w₂ and (w₁, w₂) → (−w₁, −w₂), so minima come in those orbits;
    returned sorted by w₁, duplicates (within 1e-4) removed.
    """
    from scipy.optimize import minimize

    axis = np.linspace(-span, span, grid)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    values = depth2_scalar_meta_objective(g1, g2, alpha, support, mu, task_var)
    i, j = np.unravel_index(np.argmin(values), values.shape)
    res = minimize(lambda p: depth2_scalar_meta_objective(p[0], p[1], alpha, support, mu, task_var),
                   [g1[i, j], g2[i, j]], method="BFGS", options={"gtol": 1e-12})
    p, q = res.x
    found = []
    for a, b in {(p, q), (q, p), (-p, -q), (-q, -p)}:
        if all(abs(a - x) > 1e-4 or abs(b - y) > 1e-4 for x, y, _ in found):
            found.append((float(a), float(b), float(res.fun)))
    return sorted(found)
