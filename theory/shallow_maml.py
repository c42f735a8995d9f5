"""MAML on the shallow linear model f(x) = wᵀx: update, expected losses, optimal θ and α.

With e = θ − w_τ, Ŝ = XᵀX/K and C = E[e eᵀ] = (θ − μ)(θ − μ)ᵀ + Σw (derived here):

* one step:   w' = w − α ∇L(w) = w − α Ŝ (w − w_τ) + (α/K) Xᵀε
* pre-adaptation loss:   L_pre(θ) = ½ tr(Σx C) + ½ s²
* one-step loss:   L_post(θ, α) = ½ [a₀ − 2α a₁ + α² a₂] + ½ s²  with
      a₀ = tr(Σx C),  a₁ = tr(Σx² C),
      a₂ = tr(E[ŜΣxŜ] C) + s² tr(Σx²)/K,  E[ŜΣxŜ] = ((K+1)/K) Σx³ + (tr Σx²/K) Σx
  (the preconditioned loss at P = I, preconditioned_maml);
* MAML-optimal initialisation θ* = μ (for every α), optimal step α* = a₁/a₂,
  best loss L* = ½ (a₀ − a₁²/a₂) + ½ s².
  For Σx = I, Σw = σ²UUᵀ of rank r and s² = 0:  L_post/L_pre = 1 − 2α + α²(K + d + 1)/K,
  α* = K/(K + d + 1), and L*/L_pre = (d + 1)/(K + d + 1): close to 1 when d ≫ K, whatever r.
* k steps on the same support set (isotropic Σx, exact): e_k = (I − αŜ)^k e + B (α/K) Xᵀε with
  B = Σ_{j<k} (I − αŜ)^j, so L_k = ½ [E tr((I − αŜ)^{2k})/d · tr C + α² s²/K · E tr(B² Ŝ)] + ½ s²,
  polynomials in Ŝ whose expected traces come from wishart_moments (k ≤ 3). For a
  non-isotropic Σx and k > 1 no closed form is given here: only simulation answers.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import sympy as sp

from theory.errors import NoClosedForm, require_int, require_real
from theory.preconditioned_maml import preconditioned_best_post_loss, preconditioned_post_adaptation_loss
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import K_sym, d_sym, isotropic_polynomial_trace

MAX_EXACT_STEPS = 3  # k = 4 needs E tr(Ŝ^8): 2,027,025 Wick pairings (~15 s); beyond 3, simulate


def one_step_update_symbolic(dim: int = 2, support: int = 2) -> tuple[sp.Matrix, sp.Matrix]:
    """The adapted weights w' = w − α∇L(w) for L = (1/2K)‖Xw − y‖², derived by sympy.

    Returns (derived by differentiating the literal loss, closed form w − (α/K) Xᵀ(Xw − y)).
    """
    x = sp.Matrix(support, dim, lambda i, j: sp.Symbol(f"x{i}{j}"))
    y = sp.Matrix(support, 1, lambda i, _: sp.Symbol(f"y{i}"))
    w = sp.Matrix(dim, 1, lambda i, _: sp.Symbol(f"w{i}"))
    alpha = sp.Symbol("alpha")
    loss = ((x * w - y).T * (x * w - y))[0, 0] / (2 * support)
    derived = w - alpha * sp.Matrix([sp.diff(loss, wi) for wi in w])
    closed = w - alpha / support * x.T * (x * w - y)
    return derived, closed


def pre_adaptation_loss(family: LinearTaskFamily, theta: np.ndarray) -> float:
    """L_pre(θ) = ½ E[(θᵀx − y)²] = ½ tr(Σx C) + ½ s²."""
    return 0.5 * (np.trace(family.input_cov @ family.error_second_moment(theta)) + family.noise_var)


def post_adaptation_loss(family: LinearTaskFamily, theta: np.ndarray, alpha: float,
                         steps: int = 1) -> float:
    """Expected query loss per example after ``steps`` inner steps of size α from θ (module doc)."""
    alpha = require_real("alpha", alpha)
    steps = require_int("steps", steps, 0)
    if steps == 0:
        return pre_adaptation_loss(family, theta)
    if steps == 1:
        return preconditioned_post_adaptation_loss(family, theta, np.eye(family.dim), alpha)
    if not family.isotropic_inputs:
        raise NoClosedForm("k > 1 inner steps with a non-isotropic input covariance: only simulation answers")
    if steps > MAX_EXACT_STEPS:
        raise NoClosedForm(f"k > {MAX_EXACT_STEPS} inner steps: only simulation answers")
    trace_c = np.trace(family.error_second_moment(theta))
    return float(_isotropic_k_step_function(steps)(alpha, family.support, family.dim, trace_c,
                                                   family.noise_var))


def quadratic_coefficients(family: LinearTaskFamily, theta: np.ndarray) -> tuple[float, float, float]:
    """(a₀, a₁, a₂) with L_post(θ, α) = ½(a₀ − 2αa₁ + α²a₂) + ½s² (one step)."""
    s, c, k = family.input_cov, family.error_second_moment(theta), family.support
    s2, tr_s2 = s @ s, np.trace(s @ s)
    sandwich = (k + 1) / k * s2 @ s + tr_s2 / k * s
    return np.trace(s @ c), np.trace(s2 @ c), np.trace(sandwich @ c) + family.noise_var * tr_s2 / k


def maml_optimal_init(family: LinearTaskFamily) -> np.ndarray:
    """θ* = μ: the expected post-adaptation loss is ½tr(M C) + const with M ⪰ 0 and C = (θ−μ)(θ−μ)ᵀ + Σw."""
    return family.task_mean.copy()


def optimal_step_size(family: LinearTaskFamily, steps: int = 1) -> float:
    """α* minimising the post-adaptation loss at θ = μ: a₁/a₂ for one step, else the best real root."""
    steps = require_int("steps", steps, 1)
    theta = maml_optimal_init(family)
    if steps == 1:
        _, a1, a2 = quadratic_coefficients(family, theta)
        return a1 / a2
    if not family.isotropic_inputs or steps > MAX_EXACT_STEPS:
        raise NoClosedForm("optimal α for k > 1 steps needs isotropic inputs and k <= 3")
    alpha = sp.Symbol("alpha")
    expr = _isotropic_k_step_expression(steps).subs(
        {K_sym: family.support, d_sym: family.dim, sp.Symbol("R"): np.trace(family.task_cov),
         sp.Symbol("s2"): family.noise_var})
    poly = sp.Poly(sp.expand(expr), alpha)
    roots = [float(sp.re(z)) for z in sp.Poly(poly.diff(alpha), alpha).nroots() if abs(sp.im(z)) < 1e-9]
    return min((z for z in roots if z > 0), key=lambda z: float(poly.eval(z)))


def best_post_adaptation_loss(family: LinearTaskFamily, steps: int = 1) -> float:
    """The lowest expected post-adaptation loss any step size reaches, at θ = μ."""
    theta = maml_optimal_init(family)
    return post_adaptation_loss(family, theta, optimal_step_size(family, steps), steps)


REFERENCE_LOSSES = ("pre_adaptation_loss", "shallow_best_post_loss", "preconditioned_best_post_loss")


def reference_losses(family: LinearTaskFamily) -> dict[str, float]:
    """The three theory levels every figure and report is read against, at θ* = μ and one inner step.

      pre_adaptation_loss            ½ tr(Σx C) + ½ s², C = Σw: the loss before any adaptation;
      shallow_best_post_loss         L* = ½ (a₀ − a₁²/a₂) + ½ s²: the best a plain step of any size reaches;
      preconditioned_best_post_loss  the best one preconditioned step θ − αP∇L reaches (optimal P*).
    """
    theta = maml_optimal_init(family)
    return {"pre_adaptation_loss": float(pre_adaptation_loss(family, theta)),
            "shallow_best_post_loss": float(best_post_adaptation_loss(family)),
            "preconditioned_best_post_loss": float(preconditioned_best_post_loss(family))}


@cache
def _isotropic_k_step_expression(steps: int) -> sp.Expr:
    """L_k(α, K, d, R = tr C, s2) for Σx = I, k steps (module doc), as a sympy expression."""
    alpha, lam, big_r, s2 = sp.symbols("alpha lambda R s2")
    contraction = sp.Poly((1 - alpha * lam) ** (2 * steps), lam)
    b = sum((1 - alpha * lam) ** j for j in range(steps))
    noise_poly = sp.Poly(sp.expand(b**2 * lam), lam)
    signal = isotropic_polynomial_trace(contraction) / d_sym * big_r
    noise = alpha**2 * s2 / K_sym * isotropic_polynomial_trace(noise_poly)
    return sp.Rational(1, 2) * (signal + noise + s2)


@cache
def _isotropic_k_step_function(steps: int):
    alpha, big_r, s2 = sp.symbols("alpha R s2")
    return sp.lambdify((alpha, K_sym, d_sym, big_r, s2), _isotropic_k_step_expression(steps), "math")


def isotropic_k_step_expression(steps: int) -> sp.Expr:
    """The exact k-step post-adaptation loss for Σx = I in α, K, d, R = tr C and s2 (for LaTeX)."""
    steps = require_int("steps", steps, 1, MAX_EXACT_STEPS)
    return _isotropic_k_step_expression(steps)
