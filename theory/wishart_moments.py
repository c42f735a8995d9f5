"""Gaussian and Wishart moments that the MAML losses need, derived symbolically.

Notation: x ~ N(0, Σ) in R^d; X is (K, d) with rows x_i; Ŝ = XᵀX / K, the support set's
sample second moment (K·Ŝ ~ Wishart_d(Σ, K)).

* Fourth moment (Isserlis):  E[x xᵀ A x xᵀ] = Σ A Σ + Σ Aᵀ Σ + tr(AΣ) Σ.
* Sandwich:  E[Ŝ A Ŝ] = ((K−1)/K) Σ A Σ + (1/K)(Σ A Σ + Σ Aᵀ Σ + tr(AΣ) Σ),
  from K fourth moments on the diagonal and K(K−1) independent pairs off it.
* Isotropic traces (Σ = I):  E tr(Ŝ^m) = K^{−m} Σ_π K^{a(π)} d^{b(π)}, a sum over the
  (2m−1)!! Wick pairings π of the 2m Gaussian factors of tr((XᵀX)^m), where a(π) and
  b(π) count the classes of row and column indices that π identifies.
  E tr(Ŝ) = d,  E tr(Ŝ²) = d(K + d + 1)/K.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory.errors import require_int

d_sym, K_sym = sp.symbols("d K", positive=True, integer=True)


def gaussian_fourth_moment(sigma: np.ndarray, a: np.ndarray) -> np.ndarray:
    """E[x xᵀ A x xᵀ] = Σ A Σ + Σ Aᵀ Σ + tr(AΣ) Σ for x ~ N(0, Σ); (d, d)."""
    return sigma @ a @ sigma + sigma @ a.T @ sigma + np.trace(a @ sigma) * sigma


def sample_moment_sandwich(sigma: np.ndarray, a: np.ndarray, support: int) -> np.ndarray:
    """E[Ŝ A Ŝ] with Ŝ = XᵀX/K: ((K−1)/K) ΣAΣ + (1/K) E[x xᵀ A x xᵀ]; (d, d)."""
    k = require_int("support", support, 1)
    return (k - 1) / k * sigma @ a @ sigma + gaussian_fourth_moment(sigma, a) / k


def gaussian_fourth_moment_symbolic(dim: int) -> tuple[sp.Matrix, sp.Matrix]:
    """Derive E[x xᵀ A x xᵀ] entrywise by Isserlis' theorem, for a symbolic symmetric Σ and general A.

    Returns (derived, closed_form) as sympy matrices; their difference simplifies to zero.
    """
    dim = require_int("dim", dim, 1, 4)
    sigma = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"s{min(i, j)}{max(i, j)}"))
    a = sp.Matrix(dim, dim, lambda i, j: sp.Symbol(f"a{i}{j}"))

    def e4(i, j, k, l):  # E[x_i x_j x_k x_l], Isserlis
        return sigma[i, j] * sigma[k, l] + sigma[i, k] * sigma[j, l] + sigma[i, l] * sigma[j, k]

    derived = sp.Matrix(dim, dim, lambda i, l: sum(
        a[j, k] * e4(i, j, k, l) for j in range(dim) for k in range(dim)))
    closed = sigma * a * sigma + sigma * a.T * sigma + (a * sigma).trace() * sigma
    return derived, closed


def _pairings(items: tuple):
    """All perfect matchings of ``items`` (a tuple of even length), as lists of pairs."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for i, partner in enumerate(rest):
        for tail in _pairings(rest[:i] + rest[i + 1:]):
            yield [(first, partner)] + tail


def _find(parent: list, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@cache
def wishart_trace_moment(m: int) -> sp.Expr:
    """E tr((XᵀX)^m) for X (K, d) with iid N(0, 1) entries, as a polynomial in d and K (Wick).

    tr((XᵀX)^m) = Σ Π_t X[a_t, b_t] X[a_t, b_{t+1}]  (indices cyclic in t); a pairing of the
    2m factors forces equal row indices and equal column indices within each pair.
    """
    m = require_int("m", m, 0, 8)
    if m == 0:
        return d_sym
    # factor 2t is X[a_t, b_t], factor 2t+1 is X[a_t, b_{t+1}]
    rows = [t for t in range(m) for _ in (0, 1)]
    cols = [c for t in range(m) for c in (t, (t + 1) % m)]
    counts: dict[tuple[int, int], int] = {}
    for pairing in _pairings(tuple(range(2 * m))):
        row_parent, col_parent = list(range(m)), list(range(m))
        for p, q in pairing:
            row_parent[_find(row_parent, rows[p])] = _find(row_parent, rows[q])
            col_parent[_find(col_parent, cols[p])] = _find(col_parent, cols[q])
        key = (len({_find(row_parent, i) for i in range(m)}), len({_find(col_parent, i) for i in range(m)}))
        counts[key] = counts.get(key, 0) + 1
    return sp.expand(sum(c * K_sym ** a * d_sym ** b for (a, b), c in counts.items()))


def isotropic_trace_moment(m: int) -> sp.Expr:
    """E tr(Ŝ^m) for Σ = I, Ŝ = XᵀX/K: wishart_trace_moment(m) / K^m (a rational function of d, K)."""
    return sp.simplify(wishart_trace_moment(m) / K_sym ** m)


def isotropic_polynomial_trace(poly: sp.Poly) -> sp.Expr:
    """E tr(p(Ŝ)) for a polynomial p (in the generator of ``poly``) and Σ = I."""
    return sp.expand(sum(coeff * isotropic_trace_moment(power)
                         for (power,), coeff in poly.terms()))
