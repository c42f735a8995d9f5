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
* k steps on the same support set, isotropic Σx = I, finite K (exact for every k ≥ 1):
  e_k = (I − αŜ)^k e + B (α/K) Xᵀε with B = Σ_{j<k} (I − αŜ)^j, so
      L_k = ½ [tr C · E tr((I − αŜ)^{2k})/d + α² s²/K · E tr(Ŝ B²)] + ½ s²,
  and with c_m = E tr(Ŝ^m)/d (wishart_moments, Deitmar's recursion) and αλB(λ) = 1 − (1 − αλ)^k,
      E tr((I − αŜ)^{2k})/d = Σ_{m=0}^{2k} C(2k, m) (−α)^m c_m,
      α² E tr(Ŝ B²)/d = Σ_{m=1}^{2k} [C(2k, m) − 2 C(k, m)] (−α)^m c_{m−1}.
  The alternating sums cancel heavily (k = 50: terms dozens of orders of magnitude above the sum), so they are summed
  in exact rational arithmetic (c_m exact, α and tr C as the exact binary fractions of their
  floats) and rounded once; the optimal α is found on those exact values.
* K = ∞ (population gradient, any Σx, any k): e_k = (I − αΣx)^k e, so
      L_k = ½ tr(Σx (I − αΣx)^k C (I − αΣx)^k) + ½ s² = ½ Σ_i λ_i (1 − αλ_i)^{2k} (UᵀCU)_ii + ½ s²
  (Σx = U diag(λ) Uᵀ), convex in α; k = 1 is the one-step form with the 1/K terms dropped.
* A non-isotropic Σx with finite K and k ≥ 2: theory.wishart_words (expectations of words in Ŝ)
  where that module covers the case; otherwise NoClosedForm: only simulation answers.
"""
from __future__ import annotations

from fractions import Fraction
from functools import cache, lru_cache
from math import comb

import numpy as np

from theory.ground.errors import require_int, require_real
from theory.ground.lazy import sp
from theory.preconditioned_maml import preconditioned_best_post_loss, preconditioned_post_adaptation_loss
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import dimension_symbols, inverse_support, isotropic_polynomial_trace, wishart_trace_moments
from theory.wishart_words import anisotropic_post_adaptation_loss

GRID = 64  # step sizes tried on (0, α_hi] before the golden-section refinement of the best one


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
    if family.infinite_support:
        return population_post_adaptation_loss(family, theta, alpha, steps)
    if steps == 1:
        return preconditioned_post_adaptation_loss(family, theta, np.eye(family.dim), alpha)
    if not family.isotropic_inputs:
        return _anisotropic_loss(family, theta, alpha, steps)
    return isotropic_post_adaptation_loss(family.dim, family.support, steps,
                                          float(np.trace(family.error_second_moment(theta))), family.noise_var, alpha)


def population_post_adaptation_loss(family: LinearTaskFamily, theta: np.ndarray, alpha: float,
                                    steps: int) -> float:
    """K = ∞: ½ Σ_i λ_i (1 − αλ_i)^{2k} (UᵀCU)_ii + ½ s², Σx = U diag(λ) Uᵀ (module doc); any K reads as ∞."""
    lam, weights = _population_spectrum(family, theta)
    return spectral_population_loss(lam, weights, family.noise_var, alpha, steps)


def spectral_population_loss(lam: np.ndarray, weights: np.ndarray, noise_var: float, alpha: float,
                             steps: int) -> float:
    """½ Σ_i w_i (1 − αλ_i)^{2k} + ½s² from Σx's eigenvalues λ_i and w_i = λ_i (UᵀCU)_ii (K = ∞, module doc)."""
    return float(0.5 * (np.sum(weights * (1 - alpha * lam) ** (2 * steps)) + noise_var))


def quadratic_coefficients(family: LinearTaskFamily, theta: np.ndarray) -> tuple[float, float, float]:
    """(a₀, a₁, a₂) with L_post(θ, α) = ½(a₀ − 2αa₁ + α²a₂) + ½s² (one step; the 1/K terms vanish at K = ∞)."""
    s, c, inv = family.input_cov, family.error_second_moment(theta), inverse_support(family.support)
    s2, tr_s2 = s @ s, np.trace(s @ s)
    sandwich = (1 + inv) * s2 @ s + tr_s2 * inv * s
    return np.trace(s @ c), np.trace(s2 @ c), np.trace(sandwich @ c) + family.noise_var * tr_s2 * inv


def maml_optimal_init(family: LinearTaskFamily) -> np.ndarray:
    """θ* = μ: the expected post-adaptation loss is ½tr(M C) + const with M ⪰ 0 and C = (θ−μ)(θ−μ)ᵀ + Σw."""
    return family.task_mean.copy()


def optimal_step_size(family: LinearTaskFamily, steps: int = 1) -> float:
    """α* minimising the post-adaptation loss at θ = μ over α > 0.

    One step: a₁/a₂. K = ∞: the root of the convex loss's derivative. Σx = I: the global minimum
    of the exact loss over a grid on (0, α_hi], α_hi = 2·(one-step α*) doubled while the best
    point is the last, refined by golden sections on exact rationals (to a few ulps).
    """
    steps = require_int("steps", steps, 1)
    theta = maml_optimal_init(family)
    _, a1, a2 = quadratic_coefficients(family, theta)
    if a1 == 0:  # Σw = 0 (a₁ = tr Σx²Σw, Σx ≻ 0): every task is μ, a step only adds noise, so α* = 0
        return 0.0
    if steps == 1:
        return a1 / a2
    if family.infinite_support:
        return spectral_population_optimal_step(*_population_spectrum(family, theta), steps)
    if family.isotropic_inputs:
        return isotropic_optimal_step(family.dim, family.support, steps, float(np.trace(family.task_cov)),
                                      family.noise_var, 2 * a1 / a2)
    return _global_minimiser(lambda a: _anisotropic_loss(family, theta, a, steps), 2 * a1 / a2)


def isotropic_post_adaptation_loss(dim: int, support: int, steps: int, trace_c: float, noise_var: float,
                                   alpha: float) -> float:
    """The exact k-step loss for Σx = I and finite K from d, K, k, tr C and s² alone (module doc)."""
    return _IsotropicKStep.of(dim, support, steps).value(trace_c, noise_var, alpha)


def isotropic_optimal_step(dim: int, support: int, steps: int, trace_c: float, noise_var: float,
                           alpha_hi: float) -> float:
    """α* of the exact k-step loss for Σx = I, finite K: grid on (0, α_hi], then golden sections on exact rationals."""
    loss = _IsotropicKStep.of(dim, support, steps)
    exact_c, noise = Fraction(trace_c), Fraction(noise_var)
    return _global_minimiser(lambda a: loss.exact(exact_c, noise, a), alpha_hi)


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


def isotropic_k_step_expression(steps: int) -> sp.Expr:
    """The exact k-step post-adaptation loss for Σx = I in α, K, d, R = tr C and s2 (sympy; for LaTeX)."""
    return _isotropic_k_step_expression(require_int("steps", steps, 1))


@cache
def _isotropic_k_step_expression(steps: int) -> sp.Expr:
    alpha, lam, big_r, s2 = sp.symbols("alpha lambda R s2")
    contraction = sp.Poly((1 - alpha * lam) ** (2 * steps), lam)
    b = sum((1 - alpha * lam) ** j for j in range(steps))
    noise_poly = sp.Poly(sp.expand(b**2 * lam), lam)
    d_sym, k_sym = dimension_symbols()
    signal = isotropic_polynomial_trace(contraction) / d_sym * big_r
    noise = alpha**2 * s2 / k_sym * isotropic_polynomial_trace(noise_poly)
    return sp.Rational(1, 2) * (signal + noise + s2)


class _IsotropicKStep:
    """L_k(α) = ½ [R·S(α) + s²·N(α) + s²] for Σx = I, finite K, k steps, in exact integer arithmetic.

    With E_m = E tr(W^m) (exact integers), n = 2k and α = p/q:
      S(α) = Σ_m C(n, m)(−α)^m E_m / (d K^m) = Σ_m a_m p^m q^{n−m} / (d K^n q^n),  a_m = C(n, m)(−1)^m E_m K^{n−m};
      N(α) = Σ_{m≥1} [C(n, m) − 2C(k, m)](−α)^m E_{m−1} / K^m = Σ_m b_m p^m q^{n−m} / (K^n q^n).
    """

    def __init__(self, dim: int, support: int, steps: int):
        n, e = 2 * steps, wishart_trace_moments(dim, support, 2 * steps)
        self.n, self.dim, self.scale = n, dim, support**n
        self.signal = [comb(n, m) * (-1) ** m * e[m] * support ** (n - m) for m in range(n + 1)]
        self.noise = [0] + [(comb(n, m) - 2 * comb(steps, m)) * (-1) ** m * e[m - 1] * support ** (n - m)
                            for m in range(1, n + 1)]

    @staticmethod
    @lru_cache(maxsize=32)
    def of(dim: int, support: int, steps: int) -> _IsotropicKStep:
        return _IsotropicKStep(dim, support, steps)

    def _sums(self, alpha) -> tuple[int, int, int]:
        """Numerators of S(α)·d·D and N(α)·D, and D = K^n q^n, by homogeneous Horner in p and q."""
        p, q = Fraction(alpha).as_integer_ratio()
        s_num, n_num, q_power = self.signal[self.n], self.noise[self.n], 1
        for m in range(self.n - 1, -1, -1):
            q_power *= q
            s_num = s_num * p + self.signal[m] * q_power
            n_num = n_num * p + self.noise[m] * q_power
        return s_num, n_num, self.scale * q_power

    def exact(self, trace_c: Fraction, noise_var: Fraction, alpha) -> _Ratio:
        """L_k(α) as an exact ratio of integers (no gcd: these numbers have thousands of digits)."""
        s_num, n_num, den = self._sums(alpha)
        (r1, r2), (t1, t2) = trace_c.as_integer_ratio(), noise_var.as_integer_ratio()
        return _Ratio(r1 * t2 * s_num + t1 * r2 * self.dim * (n_num + den), 2 * r2 * t2 * self.dim * den)

    def value(self, trace_c: float, noise_var: float, alpha: float) -> float:
        s_num, n_num, den = self._sums(alpha)  # S, N ≥ 0: each rounded once (int / int is correctly rounded)
        return 0.5 * (trace_c * (s_num / (self.dim * den)) + noise_var * (n_num / den + 1))


class _Ratio:
    """num/den with den > 0, compared exactly by cross-multiplication."""

    __slots__ = ("den", "num")

    def __init__(self, num: int, den: int):
        self.num, self.den = num, den

    def __lt__(self, other: _Ratio) -> bool:
        return self.num * other.den < other.num * self.den

    def __le__(self, other: _Ratio) -> bool:
        return self.num * other.den <= other.num * self.den


def _anisotropic_loss(family: LinearTaskFamily, theta: np.ndarray, alpha: float, steps: int) -> float:
    """k ≥ 2 steps, finite K, Σx ≠ I: the word-moment engine of theory.wishart_words (k ≤ MAX_WORD_STEPS),
    beyond which it raises NoClosedForm (only simulation answers)."""
    return anisotropic_post_adaptation_loss(family, theta, alpha, steps)


def _population_spectrum(family: LinearTaskFamily, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(λ_i, λ_i (UᵀCU)_ii) for Σx = U diag(λ) Uᵀ."""
    lam, u = np.linalg.eigh(family.input_cov)
    return lam, lam * np.einsum("ij,jk,ki->i", u.T, family.error_second_moment(theta), u)


def spectral_population_optimal_step(lam: np.ndarray, weights: np.ndarray, steps: int) -> float:
    """K = ∞: the root of Σ_i w_i λ_i (1 − αλ_i)^{2k−1} (decreasing in α) in [1/λ_max, 1/λ_min] over w_i > 0."""
    keep = weights > 1e-14 * weights.max()
    lam, weights = lam[keep], weights[keep]
    lo, hi = 1 / lam.max(), 1 / lam.min()
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        if np.sum(weights * lam * (1 - mid * lam) ** (2 * steps - 1)) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _global_minimiser(loss, alpha_hi: float) -> float:
    """argmin of ``loss`` on (0, α_hi] (α_hi doubled while the best grid point is the last): grid, then golden sections.

    ``loss`` may return exact Fractions, so comparisons are exact and the bracket shrinks to a few ulps.
    """
    for _ in range(30):
        grid = [alpha_hi * (i + 1) / GRID for i in range(GRID)]
        values = [loss(a) for a in grid]
        best = min(range(GRID), key=values.__getitem__)
        if best < GRID - 1:
            break
        alpha_hi *= 2
    lo, hi = (grid[best - 1] if best else 0.0), grid[best + 1]
    ratio = (5**0.5 - 1) / 2
    x1, x2 = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    f1, f2 = loss(x1), loss(x2)
    while hi - lo > 4 * np.spacing(hi):
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - ratio * (hi - lo)
            f1 = loss(x1)
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + ratio * (hi - lo)
            f2 = loss(x2)
    return x1 if f1 <= f2 else x2
