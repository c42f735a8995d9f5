"""MAML with a preconditioned inner step w' = w − α P ∇L(w): expected loss, optimal P, its gain.

This is what upper layers of a deep linear net (first order) or an explicit meta-optimizer
provide. With e = θ − w_τ, S = Σx, C = E[e eᵀ] = (θ − μ)(θ − μ)ᵀ + Σw and Ŝ the support
second moment, one step gives e' = (I − αPŜ) e + (α/K) P Xᵀε, so (derived here)

  L_post(θ, P) = ½ tr(M_P C) + ½ (α² s² / K) tr(Pᵀ S P S) + ½ s²,
  M_P = E[(I − αPŜ)ᵀ S (I − αPŜ)] = S − αSPS − αSPᵀS + α² E[Ŝ PᵀSP Ŝ]   (wishart_moments).

M_P is positive semi-definite, so θ = μ is optimal for every P. Writing Q = αP and
c₁ = (K + 1)/K, c₂ = (tr(SC) + s²)/K, the loss at θ = μ (C = Σw) is

  ½ [tr(SC) − 2 tr(SQSC) + tr(Qᵀ S Q D)] + ½ s²,   D = c₁ S C S + c₂ S,

a convex quadratic in Q minimised at Q* = C (c₁ S C + c₂ I)⁻¹ with value
  L* = ½ [tr(SC) − tr(S C S C (c₁ S C + c₂ I)⁻¹)] + ½ s².
For S = I and Σw = σ² U Uᵀ of rank r (s² = 0): L* = ½ r σ² (r + 1)/(K + r + 1).

K = ∞ (the population gradient, Ŝ = S): 1/K → 0, so E[Ŝ A Ŝ] = S A S, the noise term vanishes,
c₁ = 1 and c₂ = 0. Then Q* is the limit c₂ → 0 of C (S C + c₂ I)⁻¹ = S^{-1/2} M (M + c₂ I)⁻¹ S^{-1/2}
with M = S^{1/2} C S^{1/2}: Q* = S^{-1/2} Π_M S^{-1/2} (Π_M the projector on the range of M; Q* = S⁻¹
when C is invertible, the population Newton step) and L* = ½ s².
"""
from __future__ import annotations

from functools import cache

import numpy as np

from theory.ground.errors import ParameterError, require_real
from theory.ground.lazy import sp
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import inverse_support, sample_moment_sandwich


def step_matrix_moment(family: LinearTaskFamily, precond: np.ndarray, alpha: float) -> np.ndarray:
    """M_P = E[(I − αPŜ)ᵀ Σx (I − αPŜ)], (d, d)."""
    s, p = family.input_cov, _check_precond(family, precond)
    a = p.T @ s @ p  # (d, d), symmetric
    return s - alpha * (s @ p @ s + s @ p.T @ s) + alpha**2 * sample_moment_sandwich(s, a, family.support)


def preconditioned_post_adaptation_loss(family: LinearTaskFamily, theta: np.ndarray,
                                        precond: np.ndarray, alpha: float = 1.0) -> float:
    """Expected query loss per example after one step θ' = θ − αP∇L_support(θ) (module doc)."""
    alpha = require_real("alpha", alpha)
    s, p = family.input_cov, _check_precond(family, precond)
    signal = np.trace(step_matrix_moment(family, p, alpha) @ family.error_second_moment(theta))
    noise = alpha**2 * family.noise_var * inverse_support(family.support) * np.trace(p.T @ s @ p @ s)
    return 0.5 * (signal + noise + family.noise_var)


def optimal_preconditioner(family: LinearTaskFamily, alpha: float = 1.0) -> np.ndarray:
    """P* = C (c₁ S C + c₂ I)⁻¹ / α at θ = μ (C = Σw): the MAML-optimal linear preconditioner.

    At K = ∞ the limit S^{-1/2} Π_M S^{-1/2} / α (module doc).
    """
    alpha = require_real("alpha", alpha)
    if alpha == 0:
        raise ParameterError("alpha", alpha, "a non-zero real number")
    s, c = family.input_cov, family.task_cov
    if family.infinite_support:
        vals, vecs = np.linalg.eigh(s)
        half, inv_half = (vecs * np.sqrt(vals)) @ vecs.T, (vecs / np.sqrt(vals)) @ vecs.T
        mu, v = np.linalg.eigh(half @ c @ half)
        kept = v[:, mu > 1e-12 * max(mu.max(), 1e-300)]  # (d, rank M)
        return inv_half @ kept @ kept.T @ inv_half / alpha
    c1, c2 = _c1_c2(family)
    if c2 == 0:  # Σw = 0 and s² = 0: every task is μ, the gradient at θ = μ is 0 and P* = lim_{c₂→0} = 0
        return np.zeros_like(s)
    return c @ np.linalg.inv(c1 * s @ c + c2 * np.eye(family.dim)) / alpha


def preconditioned_best_post_loss(family: LinearTaskFamily) -> float:
    """L* = ½[tr(SC) − tr(SCSC(c₁SC + c₂I)⁻¹)] + ½s², the best loss of any preconditioned step (½s² at K = ∞)."""
    if family.infinite_support:
        return 0.5 * family.noise_var
    s, c = family.input_cov, family.task_cov
    c1, c2 = _c1_c2(family)
    if c2 == 0:  # Σw = 0 and s² = 0 (tr SC = 0 with S ≻ 0): every task is μ, nothing to adapt, L* = 0
        return 0.0
    gain = np.trace(s @ c @ s @ c @ np.linalg.inv(c1 * s @ c + c2 * np.eye(family.dim)))
    return 0.5 * (np.trace(s @ c) - gain + family.noise_var)


@cache
def gain_symbols() -> tuple:
    """(d, K, r, σ_w², s²) as positive sympy symbols: ``GAIN_SYMBOLS``, made on first use (theory.ground.lazy)."""
    return sp.symbols("d K r sigma_w^2 s^2", positive=True)


def __getattr__(name: str):
    if name == "GAIN_SYMBOLS":
        return gain_symbols()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def isotropic_gain_symbolic() -> dict[str, sp.Expr]:
    """Best losses for Σx = I, Σw = σ²UUᵀ (rank r), noise s², as expressions in d, K, r, σ², s².

    Keys: 'pre' (loss at θ = μ before adapting), 'shallow' (best scalar step, shallow_maml),
    'preconditioned' (optimal P), 'ratio' (shallow / preconditioned, ≥ 1, = 1 when r = d).
    """
    d, k, r, v, s2 = gain_symbols()
    big_r = r * v  # tr Σw
    c = (k + d + 1) / k
    shallow = sp.Rational(1, 2) * (big_r - big_r**2 / (c * big_r + s2 * d / k)) + s2 / 2
    c1, c2 = (k + 1) / k, (big_r + s2) / k
    precond = sp.Rational(1, 2) * (big_r - r * v**2 / (c1 * v + c2)) + s2 / 2
    return {"pre": big_r / 2 + s2 / 2, "shallow": sp.factor(shallow),
            "preconditioned": sp.factor(precond), "ratio": sp.factor(shallow / precond)}


def preconditioner_gain(dim: int, support: int | float, rank: int, noise_var: float = 0.0,
                        task_var: float = 1.0) -> float:
    """Best-scalar-step loss / optimal-preconditioner loss for Σx = I (isotropic_gain_symbolic; K = ∞ as a limit)."""
    d, k, r, v, s2 = gain_symbols()
    ratio = isotropic_gain_symbolic()["ratio"].subs({d: dim, r: rank, v: task_var, s2: noise_var})
    if inverse_support(support) == 0:
        return float(sp.limit(ratio, k, sp.oo))
    return float(ratio.subs(k, support))


def _c1_c2(family: LinearTaskFamily) -> tuple[float, float]:
    """c₁ = (K + 1)/K and c₂ = (tr(SC) + s²)/K at C = Σw (1 and 0 at K = ∞)."""
    inv = inverse_support(family.support)
    return 1 + inv, (np.trace(family.input_cov @ family.task_cov) + family.noise_var) * inv


def _check_precond(family: LinearTaskFamily, precond) -> np.ndarray:
    p = np.asarray(precond, float)
    if p.ndim == 0:
        p = p * np.eye(family.dim)
    if p.shape != (family.dim, family.dim):
        raise ParameterError("precond", p.shape, f"a scalar or a ({family.dim}, {family.dim}) matrix")
    return p
