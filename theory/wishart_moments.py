"""Gaussian and Wishart moments that the MAML losses need, derived symbolically or exactly.

Notation: x ~ N(0, Σ) in R^d; X is (K, d) with rows x_i; Ŝ = XᵀX / K, the support set's
sample second moment (K·Ŝ ~ Wishart_d(Σ, K)). K = ∞ (``math.inf``) means Ŝ = Σ exactly.

* Fourth moment (Isserlis):  E[x xᵀ A x xᵀ] = Σ A Σ + Σ Aᵀ Σ + tr(AΣ) Σ.
* Sandwich:  E[Ŝ A Ŝ] = ((K−1)/K) Σ A Σ + (1/K)(Σ A Σ + Σ Aᵀ Σ + tr(AΣ) Σ),
  from K fourth moments on the diagonal and K(K−1) independent pairs off it; at K = ∞, Σ A Σ.
* Mixed trace moments of W = XᵀX, Σ = I (B. Deitmar, "A recursion formula for mixed trace
  moments of isotropic Wishart matrices and the Gaussian unitary/orthogonal ensembles",
  Theorem 3.2, real case). For a tuple l = (l₁, l₂, …), E(l) = E Π_r tr(W^{l_r}):
      E(∅) = 1,   E(0, l₂, …) = d · E(l₂, …),   and for l₁ > 0
      E(l) = (K + l₁ − 1) E(l₁−1, l₂, …) + Σ_{r=1}^{l₁−1} E(r, l₁−r−1, l₂, …)
             + 2 Σ_{k≥2} l_k E(l₁+l_k−1, l₂, …, l̂_k, …).
  E is symmetric in its arguments, so any part may play l₁: here the smallest, which keeps
  the memo small (68,142 multisets for all m ≤ 101). A part 1 gives E(1, l′) = (Kd + 2|l′|) E(l′)
  with |l′| the sum of the other parts. Checked in the tests against an enumeration of Wick
  pairings (m ≤ 6), the chi-square moments at d = 1 (Π_{j<m}(K + 2j)), the d ↔ K symmetry of
  E tr(W^m) for m ≥ 1 (tr((XᵀX)^m) = tr((XXᵀ)^m)) and Monte-Carlo.
* Isotropic traces:  c_m = E tr(Ŝ^m)/d = E(m) / (d K^m);  c₁ = 1,  c₂ = (K + d + 1)/K.
"""
from __future__ import annotations

import math
from bisect import bisect_left
from fractions import Fraction
from functools import cache, lru_cache

import numpy as np

from theory.ground.errors import ParameterError, require_int
from theory.ground.lazy import is_symbolic, sp


@cache
def dimension_symbols() -> tuple:
    """(d, K) as sympy symbols (positive integers): ``d_sym`` and ``K_sym``, made on first use."""
    return sp.symbols("d K", positive=True, integer=True)


def __getattr__(name: str):  # d_sym and K_sym without importing sympy at import time (theory.ground.lazy)
    if name in ("d_sym", "K_sym"):
        return dimension_symbols()[name == "K_sym"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def inverse_support(support: int | float) -> float:
    """1/K for a support size K ≥ 1, and 0 at K = ∞ (the population gradient)."""
    if isinstance(support, float) and math.isinf(support) and support > 0:
        return 0.0
    return 1.0 / require_int("support", support, 1)


def gaussian_fourth_moment(sigma: np.ndarray, a: np.ndarray) -> np.ndarray:
    """E[x xᵀ A x xᵀ] = Σ A Σ + Σ Aᵀ Σ + tr(AΣ) Σ for x ~ N(0, Σ); (d, d)."""
    return sigma @ a @ sigma + sigma @ a.T @ sigma + np.trace(a @ sigma) * sigma


def sample_moment_sandwich(sigma: np.ndarray, a: np.ndarray, support: int | float) -> np.ndarray:
    """E[Ŝ A Ŝ] with Ŝ = XᵀX/K: ((K−1)/K) ΣAΣ + (1/K) E[x xᵀ A x xᵀ]; ΣAΣ at K = ∞; (d, d)."""
    inv = inverse_support(support)
    return (1 - inv) * sigma @ a @ sigma + inv * gaussian_fourth_moment(sigma, a)


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


class _MixedMoments:
    """E Π tr(W^{l_r}) by the recursion (module doc), memoised on sorted tuples of parts ≥ 2.

    ``dim`` and ``support`` are Python ints (exact integers out) or sympy Polys in d, K.
    """

    def __init__(self, dim, support):
        self.dim, self.support, self.memo = dim, support, {(): 1}

    def __call__(self, parts: tuple[int, ...]):
        zeros = sum(1 for p in parts if p == 0)
        key = tuple(sorted(p for p in parts if p > 0))
        return self.dim ** zeros * self._value(key, sum(key))

    def _value(self, key: tuple[int, ...], total: int):
        """E(key) for a sorted key whose leading parts may be 1; total = sum(key)."""
        factor = 1
        while key and key[0] == 1:  # E(1, l′) = (Kd + 2|l′|) E(l′)
            key, total = key[1:], total - 1
            factor = factor * (self.support * self.dim + 2 * total)
        value = self.memo.get(key)
        if value is None:
            value = self.memo[key] = self._recurse(key, total)
        return factor * value

    def _recurse(self, key: tuple[int, ...], total: int):
        s, rest = key[0], key[1:]  # l₁ = s, the smallest part (≥ 2)
        # (K + s − 1) E(s−1, rest) plus the split r = s − 1, whose other part 0 gives d · E(s−1, rest)
        value = (self.support + self.dim + s - 1) * self._value((s - 1,) + rest, total - 1)
        for r in range(1, (s - 1) // 2 + 1):  # the splits (r, s−1−r) with both parts ≥ 1, in pairs
            term = self._value((r, s - 1 - r) + rest, total - 1)
            value = value + (term if 2 * r == s - 1 else 2 * term)
        j = 0
        while j < len(rest):  # the merges of s with each distinct l_k, times its multiplicity
            lk, mult = rest[j], 1
            while j + mult < len(rest) and rest[j + mult] == lk:
                mult += 1
            others = rest[:j] + rest[j + 1:]  # one l_k removed: still sorted
            i = bisect_left(others, s + lk - 1)
            value = value + 2 * lk * mult * self._value(others[:i] + (s + lk - 1,) + others[i:], total - 1)
            j += mult
        return value


@lru_cache(maxsize=8)
def _integer_moments(dim: int, support: int) -> _MixedMoments:
    return _MixedMoments(dim, support)


def mixed_trace_moment(parts, dim=None, support=None):
    """E Π_r tr(W^{l_r}) for W = XᵀX, X (K, d) iid N(0, 1) (Deitmar's recursion, module doc).

    Integer ``dim`` and ``support``: an exact Python int. Symbols (None: the symbols d, K): an expanded
    sympy polynomial in them.
    """
    parts = tuple(require_int("parts", p, 0) for p in parts)
    gens = dimension_symbols() if dim is None or support is None else None
    dim, support = (gens[0] if dim is None else dim), (gens[1] if support is None else support)
    if is_symbolic(dim) or is_symbolic(support):
        gens = dimension_symbols()
        value = _symbolic_moments()(parts) if (dim, support) == gens else _MixedMoments(
            sp.Poly(dim, *gens), sp.Poly(support, *gens))(parts)
        return sp.expand(value.as_expr() if isinstance(value, sp.Poly) else sp.Integer(value))
    return _integer_moments(require_int("dim", dim, 1), require_int("support", support, 1))(parts)


@cache
def _symbolic_moments() -> _MixedMoments:
    d_sym, k_sym = dimension_symbols()
    return _MixedMoments(sp.Poly(d_sym, d_sym, k_sym), sp.Poly(k_sym, d_sym, k_sym))


@cache
def wishart_trace_moment(m: int) -> sp.Expr:
    """E tr((XᵀX)^m) for X (K, d) with iid N(0, 1) entries, as a polynomial in d and K (recursion)."""
    m = require_int("m", m, 0)
    return dimension_symbols()[0] if m == 0 else mixed_trace_moment((m,))


def isotropic_trace_moment(m: int) -> sp.Expr:
    """E tr(Ŝ^m) for Σ = I, Ŝ = XᵀX/K: wishart_trace_moment(m) / K^m (a rational function of d, K)."""
    return sp.simplify(wishart_trace_moment(m) / dimension_symbols()[1] ** m)


def isotropic_polynomial_trace(poly: sp.Poly) -> sp.Expr:
    """E tr(p(Ŝ)) for a polynomial p (in the generator of ``poly``) and Σ = I."""
    return sp.expand(sum(coeff * isotropic_trace_moment(power)
                         for (power,), coeff in poly.terms()))


def wishart_trace_moments(dim: int, support: int, m_max: int) -> list[int]:
    """[E tr(W^m) for m = 0 … m_max], W = XᵀX with X (K, d) iid N(0, 1): exact integers."""
    moments = _integer_moments(require_int("dim", dim, 1), require_int("support", support, 1))
    return [dim] + [moments((m,)) for m in range(1, require_int("m_max", m_max, 0) + 1)]


def isotropic_trace_moments_exact(dim: int, support: int, m_max: int) -> list[Fraction]:
    """[c_m = E tr(Ŝ^m)/d for m = 0 … m_max], Σ = I, as exact fractions E(m) / (d K^m)."""
    return [Fraction(e, dim * support**m) for m, e in enumerate(wishart_trace_moments(dim, support, m_max))]


def isotropic_trace_moments(dim: int, support: int, m_max: int) -> list[float]:
    """[c_m = E tr(Ŝ^m)/d for m = 0 … m_max], Σ = I: exact integers, rounded to float at the end."""
    if not isinstance(support, int) and math.isinf(support):
        raise ParameterError("support", support, "a finite integer >= 1 (at K = ∞, c_m = 1)")
    return [e / (dim * support**m) for m, e in enumerate(wishart_trace_moments(dim, support, m_max))]
