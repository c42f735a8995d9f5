"""Meta-SGD (Li et al. 2017): one inner step with a meta-learned step size per parameter, P = diag(p).

The step θ' = θ − α diag(p) ∇L_support(θ) is the preconditioned step of theory.preconditioned_maml with a
diagonal P. With S = Σx, C = E[e eᵀ] = (θ − μ)(θ − μ)ᵀ + Σw (C = Σw at θ = μ), Q = α diag(p) and
M = E[Ŝ C Ŝ] (theory.wishart_moments.sample_moment_sandwich; SCS at K = ∞), the terms of
L_post(θ, P) = ½[tr(SC) − 2 tr(SQSC) + tr(E[Ŝ Q S Q Ŝ] C) + (s²/K) tr(QSQS)] + ½s² read, for a diagonal Q
(derived here; M, S and C are symmetric):
    tr(SQSC) = Σ_i q_i (SCS)_ii,
    tr(E[ŜQSQŜ] C) = tr(Q S Q M) = Σ_ij q_i S_ij q_j M_ji = qᵀ (S ∘ M) q,
    tr(QSQS) = qᵀ (S ∘ S) q,
so the loss is a quadratic in p:
    L(p) = ½[tr(SC) − 2α bᵀp + α² pᵀAp] + ½s²,   b_i = (SCS)_ii,   A = S ∘ M + (s²/K) S ∘ S
(∘ the Hadamard product). A is positive semi-definite (Schur's product theorem: S, M ⪰ 0), so
    p* = A⁻¹b / α,   L*_diag = ½[tr(SC) − bᵀA⁻¹b] + ½s².
A is singular only where the bracket is bounded below without being strictly convex (K = ∞ with an S ∘ SCS of
lower rank, or Σw = 0 and s² = 0); L ≥ ½s² keeps b in the range of A, so the least-squares p (pinv) is a
minimiser, the one of least norm, and bᵀA⁺b is the exact gain. M_P ⪰ 0 for every P (preconditioned_maml), so
θ = μ is optimal for every p and L*_diag is the best Meta-SGD loss over (θ, p).

Where it stands (derived here). The optimal full P* of preconditioned_maml is diagonal when Σx and Σw are
both diagonal, and then L*_diag = L*. For Σx = I: A = diag(c₁C_ii + c₂), b_i = C_ii (c₁ = (K + 1)/K,
c₂ = (tr C + s²)/K), so
    L*_diag = ½[tr C − Σ_i C_ii² / (c₁C_ii + c₂)] + ½s²,
against L* = ½[tr C − Σ_i λ_i² / (c₁λ_i + c₂)] + ½s² (λ_i the eigenvalues of C): x ↦ x²/(c₁x + c₂) is convex
and the diagonal of C is majorised by its eigenvalues (Schur–Horn), so L*_diag ≥ L*, with equality only when
the diagonal terms already carry the spectrum (C diagonal, up to where its diagonal is constant on a block of
equal eigenvalues). Equal diagonal entries C_ii = c (Σw = vI, or any Σw with a constant diagonal, such as a
circulant matrix) make the best p constant, and L*_diag is then the best scalar step of theory.shallow_maml:
d c²/(c₁c + c₂) = (tr C)² / (((K + d + 1)/K) tr C + s²d/K). A rotated low-rank Σw (LinearTaskFamily.subspace)
has an unequal diagonal, so Meta-SGD beats the best scalar step, by little when d ≫ r (the diagonal is then
nearly r/d everywhere), and stays above L*.
"""
from __future__ import annotations

import numpy as np

from theory.ground.errors import ParameterError, require_real
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import inverse_support, sample_moment_sandwich


def meta_sgd_quadratic(family: LinearTaskFamily, theta=None) -> tuple[float, np.ndarray, np.ndarray]:
    """(tr(SC), b (d,), A (d, d)) of L(p) = ½[tr(SC) − 2α bᵀp + α² pᵀAp] + ½s² at θ (μ by default; module doc)."""
    s = family.input_cov
    c = family.error_second_moment(family.task_mean if theta is None else _check_vector(family, "theta", theta))
    moment = sample_moment_sandwich(s, c, family.support)  # M = E[ŜCŜ], (d, d)
    a = s * moment + family.noise_var * inverse_support(family.support) * s * s  # Hadamard products
    return float(np.trace(s @ c)), np.diag(s @ c @ s).copy(), a


def meta_sgd_post_adaptation_loss(family: LinearTaskFamily, p, alpha: float, theta=None) -> float:
    """L(p) = ½[tr(SC) − 2α bᵀp + α² pᵀAp] + ½s²: the query loss after θ − α diag(p) ∇L (θ = μ by default)."""
    alpha = require_real("alpha", alpha)
    p = _check_vector(family, "p", p)
    trace, b, a = meta_sgd_quadratic(family, theta)
    return 0.5 * (trace - 2 * alpha * b @ p + alpha**2 * p @ a @ p + family.noise_var)


def optimal_diagonal(family: LinearTaskFamily, alpha: float = 1.0) -> np.ndarray:
    """p* = A⁻¹b/α at θ = μ, (d,): the best per-parameter step sizes (least-norm minimiser where A is singular)."""
    alpha = require_real("alpha", alpha)
    if alpha == 0:
        raise ParameterError("alpha", alpha, "a non-zero real number")
    _, b, a = meta_sgd_quadratic(family)
    return _solve(a, b) / alpha


def meta_sgd_best_post_loss(family: LinearTaskFamily) -> float:
    """L*_diag = ½[tr(SC) − bᵀA⁻¹b] + ½s² at θ = μ: the best Meta-SGD loss over (θ, p) (module doc)."""
    trace, b, a = meta_sgd_quadratic(family)
    return 0.5 * (trace - b @ _solve(a, b) + family.noise_var)


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """A⁻¹b, or the least-norm least-squares solution A⁺b where A is singular (b lies in its range: module doc)."""
    try:
        if np.linalg.cond(a) < 1e12:
            return np.linalg.solve(a, b)
    except np.linalg.LinAlgError:
        pass
    return np.linalg.lstsq(a, b, rcond=1e-12)[0]


def _check_vector(family: LinearTaskFamily, name: str, value) -> np.ndarray:
    v = np.asarray(value, float)
    if v.shape != (family.dim,):
        raise ParameterError(name, v.shape, f"a vector of length d = {family.dim}")
    if not np.all(np.isfinite(v)):
        raise ParameterError(name, "non-finite entries", "finite entries")
    return v
