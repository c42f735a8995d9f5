"""ANIL on a two-layer linear net f(x) = vᵀW x of width h: the exact loss after one head step, and its optimum.

ANIL adapts the head v only. With the support gradient ĝ = Ŝ(Wᵀv − w_τ) − Xᵀε/K of the end-to-end
loss, ∇_v L = W ĝ, so v' = v₀ − α W ĝ and the end-to-end vector moves as
    w_e' = Wᵀv' = θ − α WᵀW ĝ,   θ = Wᵀv₀:
exactly the preconditioned step of theory.preconditioned_maml with P = WᵀW (PSD, rank ≤ min(h, d)).
So L_ANIL(W, v₀) = L_post(θ = Wᵀv₀, P = WᵀW) (derived here; no new moment is needed).

The best width-h ANIL (derived here). The loss depends on (W, v₀) through Q = αP = αWᵀW and θ only, and
(cW, v₀/c) keeps θ and scales P by c²: for every α > 0 the attainable Q are the same, so the best loss
does not depend on α (> 0). M_P is PSD, so θ = μ is best for every P. When θ = μ is reachable (μ in the
row space of W; always when μ = 0, with v₀ = 0), the loss with S = Σx, C = Σw is
    ½ [tr(SC) − G(Q)] + ½ s²,   G(Q) = 2 tr(SQSC) − tr(Qᵀ S Q D),   D = c₁ SCS + c₂ S,
c₁ = (K + 1)/K, c₂ = (tr(SC) + s²)/K (theory.preconditioned_maml). Whitening, Q̃ = S^{1/2} Q S^{1/2} and
C̃ = S^{1/2} C S^{1/2} with eigenpairs (λ_i, u_i), λ_1 ≥ λ_2 ≥ …, give G = 2 tr(Q̃C̃) − tr(Q̃ᵀQ̃ D̃),
D̃ = c₁C̃ + c₂I, and completing the square (c₂ > 0, so D̃ ≻ 0)
    G = tr(C̃ D̃⁻¹ C̃) − ‖Q̃ D̃^{1/2} − C̃ D̃^{-1/2}‖_F².
rank(Q̃ D̃^{1/2}) = rank Q ≤ h, so by Eckart–Young the best Q of rank ≤ h — over all d × d matrices, not
only PSD ones — keeps the h largest eigenvalues λ_i/√(c₁λ_i + c₂) of C̃ D̃^{-1/2}, i.e. of C̃D̃⁻¹C̃ (the
issue's Σw M⁻¹ Σw, M = D̃, at S = I); λ ↦ λ²/(c₁λ + c₂) increases on λ ≥ 0, so these are simply the h
largest eigenvalues of C̃ = Σx^{1/2} Σw Σx^{1/2}:
    Q̃_h = Σ_{i ≤ h} λ_i/(c₁λ_i + c₂) u_i u_iᵀ,   L_h = ½ [Σ_i λ_i − Σ_{i ≤ h} λ_i²/(c₁λ_i + c₂)] + ½ s².
Q̃_h is PSD, so restricting to P = WᵀW loses nothing: W = diag(√(q_i/α)) [u_1 … u_h]ᵀ Σx^{-1/2},
q_i = λ_i/(c₁λ_i + c₂), attains it. For h ≥ rank Σw the dropped λ_i are 0 and L_h is the optimal
(any-P) preconditioned loss L*; for h < rank Σw, L_h − L* = ½ Σ_{rank ≥ i > h} λ_i²/(c₁λ_i + c₂) > 0.
K = ∞: c₁ = 1, c₂ = 0, D̃ = C̃ may be singular; G = tr C̃ − ‖(I − Q̃) C̃^{1/2}‖_F² gives the projector on
the top-h eigenvectors and L_h = ½ Σ_{i > h} λ_i + ½ s² (the limit c₂ → 0 of the formula above).
The same holds (any K) with c₂ = 0 only when Σw = 0 and s² = 0, where every Q gives 0.

μ ≠ 0 couples initialisation and preconditioner: θ = Wᵀv₀ lies in the row space of W, which the
preconditioner also fixes. L_h is then a lower bound, attained when μ lies in the row space of the W
above; otherwise the optimum is found numerically (L-BFGS on the exact loss with its analytic gradient,
from seeded random starts). With a spare row (h > rank Σw), a small extra row along μ's remainder and
a large head weight reach θ = μ with P → P*: the infimum is L_h but it is not attained.
Gradient (derived here): with g_θ = M_P(θ − μ) and G_P = −α SCS + α² S P E[ŜCŜ] + (α² s²/K) SPS,
    ∇_W L = v₀ g_θᵀ + W (G_P + G_Pᵀ),   ∇_{v₀} L = W g_θ.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from theory.ground.errors import ParameterError, require_int, require_real
from theory.preconditioned_maml import preconditioned_post_adaptation_loss, step_matrix_moment
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import inverse_support, sample_moment_sandwich

_IN_ROWS_TOL = 1e-10  # relative residual of Wᵀv₀ = μ below which μ counts as in W's row space
# L-BFGS-B stops at a relative loss change below 1e-14 (float64 noise of the loss) or after 1000
# iterations: an infimum that is not attained (module doc) would otherwise run on with v₀ → ∞
_LBFGS_OPTIONS = {"maxiter": 1000, "maxfun": 2000, "ftol": 1e-14, "gtol": 1e-10}


@dataclass(frozen=True)
class AnilOptimum:
    """The best width-h ANIL initialisation found: its loss and the (W, v₀) reaching it."""

    value: float  # the post-adaptation loss at (w, v0)
    w: np.ndarray  # W (h, d), the frozen body
    v0: np.ndarray  # v₀ (h,), the head's initialisation
    method: str  # "closed form" or "numerical (N seeded restarts)"
    note: str  # why that method, and what the value is (attained, or a bound)


def anil_post_adaptation_loss(family: LinearTaskFamily, w, v0, alpha: float) -> float:
    """L_ANIL(W, v₀) = L_post(θ = Wᵀv₀, P = WᵀW): the expected query loss after one head step (module doc)."""
    w, v0 = _check_net(family, w, v0)
    return preconditioned_post_adaptation_loss(family, w.T @ v0, w.T @ w, alpha)


def anil_loss_gradient(family: LinearTaskFamily, w, v0, alpha: float) -> tuple[float, np.ndarray, np.ndarray]:
    """(L_ANIL, ∇_W L_ANIL (h, d), ∇_{v₀} L_ANIL (h,)): the analytic gradient of the module doc."""
    w, v0 = _check_net(family, w, v0)
    alpha = require_real("alpha", alpha)
    s, inv_k = family.input_cov, inverse_support(family.support)
    theta, p = w.T @ v0, w.T @ w  # (d,), (d, d)
    c = family.error_second_moment(theta)  # (d, d)
    g_theta = step_matrix_moment(family, p, alpha) @ (theta - family.task_mean)  # (d,)
    g_p = (-alpha * s @ c @ s + alpha**2 * s @ p @ sample_moment_sandwich(s, c, family.support)
           + alpha**2 * family.noise_var * inv_k * s @ p @ s)  # (d, d)
    value = preconditioned_post_adaptation_loss(family, theta, p, alpha)
    return value, np.outer(v0, g_theta) + w @ (g_p + g_p.T), w @ g_theta


def rank_limited_best_post_loss(family: LinearTaskFamily, width: int) -> float:
    """L_h = ½[Σλ_i − Σ_{i≤h} λ_i²/(c₁λ_i + c₂)] + ½s²: the best rank-≤h preconditioned step at θ = μ.

    λ_i are the eigenvalues of Σx^{1/2} Σw Σx^{1/2}, largest first (module doc). It is the best width-h
    ANIL loss when μ lies in the row space of the optimal W (μ = 0 in particular), a lower bound otherwise.
    """
    lam, _, c1, c2 = _whitened_spectrum(family)
    width = require_int("width", width, 1)
    return 0.5 * (lam.sum() - _gains(lam[:width], c1, c2).sum() + family.noise_var)


def rank_limited_body(family: LinearTaskFamily, width: int, alpha: float = 1.0) -> np.ndarray:
    """W (h, d) with αWᵀW = Σx^{-1/2} Σ_{i≤h} q_i u_i u_iᵀ Σx^{-1/2}, q_i = λ_i/(c₁λ_i + c₂): attains L_h."""
    width = require_int("width", width, 1)
    alpha = require_real("alpha", alpha, 0.0, strict=True)
    lam, vecs, c1, c2 = _whitened_spectrum(family)
    kept = lam[:width]
    q = np.where(kept > 0, kept / np.where(kept > 0, c1 * kept + c2, 1.0), 0.0)  # (min(h, d),)
    vals, basis = np.linalg.eigh(family.input_cov)
    inv_half = (basis / np.sqrt(vals)) @ basis.T  # Σx^{-1/2}
    w = np.zeros((width, family.dim))
    w[:len(kept)] = np.sqrt(q / alpha)[:, None] * (vecs[:, :len(kept)].T @ inv_half)
    return w


def anil_best_post_loss(family: LinearTaskFamily, width: int, alpha: float = 1.0, restarts: int = 8,
                        seed: int = 0, method: str = "auto") -> AnilOptimum:
    """The lowest one-step ANIL loss over (W, v₀) at width h and step α > 0 (module doc).

    ``method``: "auto" uses the closed form when μ lies in the row space of the closed-form W (μ = 0
    in particular), else the numerical optimiser; "numerical" always optimises numerically
    (``restarts`` seeded random starts, L-BFGS with the analytic gradient; the best is kept).
    """
    width = require_int("width", width, 1)
    alpha = require_real("alpha", alpha, 0.0, strict=True)
    restarts = require_int("restarts", restarts, 1)
    if method not in ("auto", "numerical"):
        raise ParameterError("method", method, "'auto' or 'numerical'")
    if method == "auto":
        w = rank_limited_body(family, width, alpha)
        v0, residual = _head_reaching(w, family.task_mean)
        if residual <= _IN_ROWS_TOL * max(1.0, float(np.linalg.norm(family.task_mean))):
            return AnilOptimum(anil_post_adaptation_loss(family, w, v0, alpha), w, v0, "closed form",
                               "θ = μ in the row space of W; αWᵀW keeps the top-h eigenvalues of Σx^½ΣwΣx^½")
    return _numerical_optimum(family, width, alpha, restarts, seed)


def closed_form_attains(family: LinearTaskFamily, width: int, alpha: float = 1.0) -> bool:
    """Whether anil_best_post_loss's "auto" takes the closed form: μ in the row space of the closed-form W (μ = 0
    always), so no numerical search is needed."""
    _, residual = _head_reaching(rank_limited_body(family, width, alpha), family.task_mean)
    return residual <= _IN_ROWS_TOL * max(1.0, float(np.linalg.norm(family.task_mean)))


def _numerical_optimum(family: LinearTaskFamily, width: int, alpha: float, restarts: int,
                       seed: int) -> AnilOptimum:
    """L-BFGS-B over x = (vec W, v₀) from ``restarts`` seeded random starts; the best end point."""
    from scipy.optimize import minimize

    h, d = width, family.dim
    rng = np.random.default_rng(seed)
    scale_w = 1.0 / np.sqrt(alpha * np.trace(family.input_cov))  # αWᵀW of order 1/d per row
    scale_v = (1.0 + np.linalg.norm(family.task_mean)) / np.sqrt(h)

    def objective(x):
        value, g_w, g_v = anil_loss_gradient(family, x[:h * d].reshape(h, d), x[h * d:], alpha)
        return value, np.concatenate([g_w.ravel(), g_v])

    best = None
    for _ in range(restarts):
        x0 = np.concatenate([scale_w * rng.standard_normal(h * d), scale_v * rng.standard_normal(h)])
        result = minimize(objective, x0, jac=True, method="L-BFGS-B",
                          options=_LBFGS_OPTIONS)
        if best is None or result.fun < best.fun:
            best = result
    w, v0 = best.x[:h * d].reshape(h, d), best.x[h * d:]
    bound = rank_limited_best_post_loss(family, width)
    stop = ("converged" if best.status == 0 else
            f"stopped at the iteration limit with ‖v₀‖ = {np.linalg.norm(v0):.3g}: an infimum not attained?")
    return AnilOptimum(anil_post_adaptation_loss(family, w, v0, alpha), w, v0,
                       f"numerical ({restarts} seeded restarts)",
                       f"θ = Wᵀv₀ and P = WᵀW coupled (μ outside the closed-form W's rows); lower bound "
                       f"L_h = {bound:.6g}; best run {stop}")


def _whitened_spectrum(family: LinearTaskFamily) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Eigenvalues λ (descending, clipped at 0) and eigenvectors of Σx^{1/2}ΣwΣx^{1/2}, and c₁, c₂."""
    vals, basis = np.linalg.eigh(family.input_cov)
    half = (basis * np.sqrt(vals)) @ basis.T  # Σx^{1/2}
    lam, vecs = np.linalg.eigh(half @ family.task_cov @ half)
    lam, vecs = np.clip(lam[::-1], 0.0, None), vecs[:, ::-1]
    lam[lam <= 1e-12 * max(lam.max(initial=0.0), 1e-300)] = 0.0
    inv_k = inverse_support(family.support)
    return lam, vecs, 1.0 + inv_k, (lam.sum() + family.noise_var) * inv_k


def _gains(lam: np.ndarray, c1: float, c2: float) -> np.ndarray:
    """λ²/(c₁λ + c₂) per kept eigenvalue (λ at c₂ = 0; 0 for λ = 0)."""
    positive = lam > 0
    return np.where(positive, lam**2 / np.where(positive, c1 * lam + c2, 1.0), 0.0)


def _head_reaching(w: np.ndarray, mu: np.ndarray) -> tuple[np.ndarray, float]:
    """The least-norm v₀ with Wᵀv₀ closest to μ, and the residual ‖Wᵀv₀ − μ‖."""
    v0 = np.linalg.lstsq(w.T, mu, rcond=None)[0]
    return v0, float(np.linalg.norm(w.T @ v0 - mu))


def _check_net(family: LinearTaskFamily, w, v0) -> tuple[np.ndarray, np.ndarray]:
    w, v0 = np.asarray(w, float), np.asarray(v0, float)
    if w.ndim != 2 or w.shape[1] != family.dim:
        raise ParameterError("w", w.shape, f"an (h, {family.dim}) matrix")
    if v0.shape != (w.shape[0],):
        raise ParameterError("v0", v0.shape, f"a vector of length h = {w.shape[0]}")
    for name, value in (("w", w), ("v0", v0)):
        if not np.all(np.isfinite(value)):
            raise ParameterError(name, "non-finite entries", "finite entries")
    return w, v0
