"""iMAML and biased regularisation: the inner problem is ridge regression towards θ, and its expected query loss.

The inner problem (Rajeswaran et al. 2019; every "biased regularisation" method) on a task's support set (X, y),
    φ = argmin (1/2K)‖Xφ − y‖² + ½(φ − θ)ᵀΛ(φ − θ) = (Ŝ + Λ)⁻¹(Xᵀy/K + Λθ),   Ŝ = XᵀX/K,
is solved exactly, so its implicit meta-gradient is exact too. With y = Xw + ε and B = (Ŝ + Λ)⁻¹ (derived here),
    φ − w = B(Ŝw + Xᵀε/K + Λθ) − B(Ŝ + Λ)w = B(Λ(θ − w) + Xᵀε/K),
and w and ε are independent of X, E[(θ − w)(θ − w)ᵀ] = C = (θ − μ)(θ − μ)ᵀ + Σw, E[XᵀεεᵀX]/K² = (s²/K)Ŝ, so given
the support inputs X the expected query loss is exact in the task and the noise:
    ℓ(X) = ½[tr(Σx B Λ C Λ B) + (s²/K) tr(Σx B Ŝ B)] + ½s²,       L_ridge(θ, Λ) = E_X ℓ(X).
Λ is symmetric positive semi-definite: a scalar λ (Λ = λI, as iMAML is used), a vector (a diagonal Λ) or a matrix.

How ``ridge_post_adaptation_loss`` evaluates E_X (``method``):
* exact, K = ∞: Ŝ = Σx, no noise term: L = ½ tr(Σx B Λ C Λ B) + ½s², B = (Σx + Λ)⁻¹;
* exact, Λ = 0 and K > d + 1 (least squares; E[Ŝ⁻¹] = K Σx⁻¹/(K − d − 1), the inverse-Wishart mean):
  ℓ(X) = ½(s²/K) tr(Σx Ŝ⁻¹) + ½s², so L = ½ s² (K − 1)/(K − d − 1), whatever θ (for K ≤ d + 1 it is infinite);
* the posterior mean, Λ = (s²/K)Σw⁻¹ and θ = μ (Σw ≻ 0, s² > 0): φ = (XᵀX + s²Σw⁻¹)⁻¹(Xᵀy + s²Σw⁻¹μ) is the
  posterior mean of w_τ, so L is theory.bayes_floor's floor, with that module's method (exact, quadrature, or
  its Monte-Carlo over support sets). For a singular Σw or s² = 0 no finite Λ gives it: the floor is then the
  infimum over Λ, approached as Λ grows without bound on Σw's null space (or as Λ = εΣw⁻¹, ε → 0, at s² = 0);
* otherwise only simulation answers: "monte-carlo over support inputs, exact given them": X drawn at a fixed seed,
  ℓ(X) computed exactly per draw (Rao–Blackwellised: no w_τ or labels are drawn), with its 95% interval.

Σx = βI (derived here): X's rows are isotropic, so Ŝ = U diag(σ) Uᵀ with U Haar-distributed and independent of
the eigenvalues σ; at Λ = λI, B = U diag(w) Uᵀ, w_i = 1/(σ_i + λ), and E[(UᵀCU)_ii | σ] = tr C/d, so
    E[ℓ(X) | σ] = ½ β [λ² (tr C/d) Σ_i w_i² + (s²/K) Σ_i σ_i w_i²] + ½s²,
where only the m = min(K, d) non-zero σ_i are random (the others give (d − m)/λ² in the first sum): they are β/K
times the eigenvalues of Wishart_m(I, max(K, d)), drawn by Bartlett's decomposition. The estimate over these draws
(``isotropic_best_scalar_ridge``) costs O(m³) per draw whatever d is, and averages the rotation out exactly
(Rao–Blackwellised once more), so its interval is narrower than the dense one's at the same number of draws.

The best Λ (derived here): no rule that sees the support set beats the posterior mean, so for Σw ≻ 0, s² > 0 the
best (θ, Λ) is (μ, (s²/K)Σw⁻¹) and its loss is the Bayes floor (``best_ridge_loss``). The best scalar λ
(``best_scalar_ridge``) is numerical: a one-dimensional minimisation over λ > 0 of the Monte-Carlo estimate at
θ = μ with common random numbers (the same draws of X for every λ), labelled as such. For Σw = vI (any v > 0)
λI is (s²/K)Σw⁻¹ at λ* = s²/(Kv), so the best scalar ridge reaches the Bayes floor there; for an anisotropic Σw
it stays above it.

Approximation (``marchenko_pastur_ridge_loss``): Σx = I, Λ = λI, C = vI (θ = μ, Σw = vI). Then
ℓ(X) = ½ Σ_i [λ²v + (s²/K)σ_i]/(σ_i + λ)² + ½s² over the eigenvalues σ_i of Ŝ. As d, K → ∞ with γ = d/K
fixed, their distribution tends to Marchenko–Pastur's, whose Stieltjes transform at −λ is
    m(λ) = ∫ dF(σ)/(σ + λ) = [−(1 − γ + λ) + √((1 − γ + λ)² + 4γλ)]/(2γλ)     (atom at 0 included for γ > 1),
with ∫ dF/(σ + λ)² = −m'(λ) and ∫ σ dF/(σ + λ)² = m(λ) + λ m'(λ) (Dobriban & Wager 2018 give the ridge risk
in this form), so
    L ≈ ½ d [−λ²v m'(λ) + (s²/K)(m(λ) + λ m'(λ))] + ½s²,
labelled "approximation (Marchenko–Pastur limit)": a deterministic equivalent at finite d and K, not exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.bayes_floor import bayes_optimal_loss, wishart_identity
from theory.ground.errors import ParameterError, require_int, require_real
from theory.ground.statistics import Z_REPORT
from theory.task_family import LinearTaskFamily

MONTE_CARLO = "monte-carlo over support inputs, exact given them"
METHODS = ("exact", "quadrature", MONTE_CARLO, "numerical", "approximation (Marchenko–Pastur limit)")
FLOATS_PER_CHUNK = 4_000_000  # draws per batch × d²: bounds memory at about 3 such arrays of 32 MB
POSTERIOR_TOL = 1e-10  # relative: Λ·Σw·K/s² within this of I (and θ within it of μ) counts as the posterior mean
LOG_LAMBDA_RANGE = 12.0  # best_scalar_ridge searches log λ within ± this of log(s²/(K·tr Σw/d)), or of 0


@dataclass(frozen=True)
class RidgeLoss:
    """L_ridge(θ, Λ), how it was computed, its 95% half-width (0 unless Monte-Carlo) and, for the best scalar, λ."""

    value: float  # expected query loss per example after the ridge inner step, noise included
    ci95: float  # 95% half-width of ``value``; 0.0 where it is not a Monte-Carlo estimate
    method: str  # one of METHODS
    note: str  # which case of the module doc applied
    lam: float | None = None  # best_scalar_ridge: the λ found

    @property
    def stderr(self) -> float:
        """The standard error of ``value`` (ci95 / 1.96)."""
        return self.ci95 / Z_REPORT

    def __str__(self) -> str:
        spread = f" ± {self.ci95:.2g}" if self.ci95 > 0 else ""
        return f"{self.value:.6g}{spread} ({self.method})"


def ridge_post_adaptation_loss(family: LinearTaskFamily, theta=None, lam=1.0, seed: int = 0,
                               draws: int = 50_000) -> RidgeLoss:
    """L_ridge(θ, Λ) = E_X ℓ(X) (module doc): exact where it exists, else Monte-Carlo over X (``draws``, ``seed``)."""
    theta = _check_theta(family, theta)
    penalty = penalty_matrix(family, lam)
    seed, draws = require_int("seed", seed, 0), require_int("draws", draws, 2)
    s, s2, c = family.input_cov, family.noise_var, family.error_second_moment(theta)
    if family.infinite_support:
        b = np.linalg.inv(s + penalty)
        value = np.trace(s @ b @ penalty @ c @ penalty @ b)
        return RidgeLoss(0.5 * (value + s2), 0.0, "exact", "K = ∞: Ŝ = Σx, B = (Σx + Λ)⁻¹")
    k, d = family.support, family.dim
    if not np.any(penalty):
        return RidgeLoss(0.5 * s2 * (k - 1) / (k - d - 1), 0.0, "exact",
                         "Λ = 0 (least squares), K > d + 1: E Ŝ⁻¹ = KΣx⁻¹/(K − d − 1)")
    if is_posterior_mean(family, theta, penalty):
        floor = bayes_optimal_loss(family, n_samples=draws, seed=seed)
        method = MONTE_CARLO if floor.method == "monte-carlo" else floor.method
        return RidgeLoss(floor.value, floor.ci95, method,
                         f"Λ = (s²/K)Σw⁻¹, θ = μ: φ is the posterior mean, the Bayes floor ({floor.note})")
    mean, stderr = _monte_carlo(family, penalty, c, draws, seed)
    return RidgeLoss(mean, Z_REPORT * stderr, MONTE_CARLO, f"{draws} draws of X at seed {seed}")


def ridge_loss_given_inputs(family: LinearTaskFamily, theta, lam, x) -> np.ndarray:
    """ℓ(X) = ½[tr(Σx B Λ C Λ B) + (s²/K) tr(Σx B Ŝ B)] + ½s², B = (Ŝ + Λ)⁻¹: exact given support inputs x (…, K, d)."""
    theta, penalty = _check_theta(family, theta), penalty_matrix(family, lam)
    x = np.asarray(x, float)
    if x.ndim < 2 or x.shape[-1] != family.dim or not np.all(np.isfinite(x)):
        raise ParameterError("x", x.shape, f"finite support inputs of shape (…, K, {family.dim})")
    x_hat = np.swapaxes(x, -1, -2) @ x / x.shape[-2]  # Ŝ, (…, d, d)
    return _given_moments(family, penalty, family.error_second_moment(theta), x_hat, x.shape[-2])


def posterior_mean_penalty(family: LinearTaskFamily) -> np.ndarray:
    """Λ = (s²/K)Σw⁻¹, (d, d): the ridge whose φ is the posterior mean (at θ = μ). Needs Σw ≻ 0, s² > 0, K < ∞."""
    if family.infinite_support or family.noise_var == 0:
        raise ParameterError("family", "K = ∞ or s² = 0", "finite K and s² > 0 (else the posterior mean is no "
                             "finite ridge: module doc)")
    vals = np.linalg.eigvalsh(family.task_cov)
    if vals.min() <= 1e-12 * max(vals.max(), 1e-300):
        raise ParameterError("family", f"rank Σw = {int(np.sum(vals > 1e-12 * vals.max()))} < d = {family.dim}",
                             "Σw positive definite (for a singular Σw the floor is an infimum over Λ: module doc)")
    return family.noise_var / family.support * np.linalg.inv(family.task_cov)


def is_posterior_mean(family: LinearTaskFamily, theta: np.ndarray, penalty: np.ndarray) -> bool:
    """Whether (θ, Λ) = (μ, (s²/K)Σw⁻¹) to POSTERIOR_TOL: the case where L_ridge is the Bayes floor."""
    if family.infinite_support or family.noise_var == 0:
        return False
    scale = max(1.0, float(np.linalg.norm(family.task_mean)))
    if np.linalg.norm(theta - family.task_mean) > POSTERIOR_TOL * scale:
        return False
    product = penalty @ family.task_cov * (family.support / family.noise_var)
    return bool(np.max(np.abs(product - np.eye(family.dim))) <= POSTERIOR_TOL)


def best_ridge_loss(family: LinearTaskFamily, seed: int = 0, draws: int = 400_000) -> RidgeLoss:
    """The best (θ, Λ): the Bayes floor, attained at (μ, (s²/K)Σw⁻¹) where Σw ≻ 0 and s² > 0, else an infimum."""
    floor = bayes_optimal_loss(family, n_samples=draws, seed=seed)
    attained = not family.infinite_support and family.noise_var > 0 and \
        np.linalg.eigvalsh(family.task_cov).min() > 1e-12 * max(np.linalg.eigvalsh(family.task_cov).max(), 1e-300)
    note = ("attained at θ = μ, Λ = (s²/K)Σw⁻¹" if attained else
            "an infimum over Λ (singular Σw, s² = 0 or K = ∞: no finite Λ gives the posterior mean; module doc)")
    method = MONTE_CARLO if floor.method == "monte-carlo" else floor.method
    return RidgeLoss(floor.value, floor.ci95, method, f"the Bayes floor, {note}")


def best_scalar_ridge(family: LinearTaskFamily, seed: int = 0, draws: int = 50_000) -> RidgeLoss:
    """min over λ > 0 of L_ridge(μ, λI), numerical: Brent's method on log λ over one fixed set of draws of X.

    ``value`` is the Monte-Carlo loss at the λ found and ``ci95`` its interval at that λ (the minimum of an
    estimate is biased low by much less than the interval; the same draws give every λ).
    """
    seed, draws = require_int("seed", seed, 0), require_int("draws", draws, 2)
    if family.infinite_support:
        raise ParameterError("family", "K = ∞", "finite K (at K = ∞, λ → 0 gives ½s²: nothing to estimate)")
    draws_of_x = _scalar_draws(family, draws, seed)
    return _brent_on_log_lambda(lambda lam: _scalar_values(family, draws_of_x, lam),
                                np.trace(family.task_cov) / family.dim, family.noise_var, family.support,
                                f"Brent on log λ over {draws} common draws of X at seed {seed} (Monte-Carlo, exact "
                                "given X)")


def _brent_on_log_lambda(values, v: float, noise_var: float, support: int, note: str) -> RidgeLoss:
    """The λ minimising mean(values(λ)) (per-draw losses): a 25-point grid on log λ around log(s²/(Kv)) (or 0),
    then Brent inside the best bracket; the loss there with its 95% interval over the draws."""
    from scipy import optimize  # here: explore --theory-only starts faster without it

    def loss(log_lam: float) -> float:
        return float(np.mean(values(math.exp(log_lam))))

    centre = math.log(noise_var / (support * v)) if noise_var > 0 and v > 0 else 0.0
    grid = centre + np.linspace(-LOG_LAMBDA_RANGE, LOG_LAMBDA_RANGE, 25)
    grid_values = [loss(g) for g in grid]
    i = int(np.argmin(grid_values))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)]
    found = optimize.minimize_scalar(loss, bounds=(lo, hi), method="bounded", options={"xatol": 1e-6})
    lam = math.exp(found.x)
    samples = values(lam)
    ci95 = Z_REPORT * float(samples.std(ddof=1)) / math.sqrt(samples.size)
    return RidgeLoss(float(samples.mean()), ci95, "numerical", note, lam)


ISOTROPIC_MAX_EIGENVALUES = 400  # isotropic_best_scalar_ridge draws an m × m Wishart, m = min(K, d): at most this


def isotropic_best_scalar_ridge(dim: int, support: int, trace_c: float, noise_var: float, input_scale: float = 1.0,
                                seed: int = 0, draws: int = 50_000) -> RidgeLoss:
    """min over λ > 0 of L_ridge(μ, λI) for Σx = βI (β = ``input_scale``) and any Σw with tr Σw = ``trace_c``,
    numerical: Brent on log λ over common draws of Ŝ's eigenvalues (module doc, "Σx = βI"); O(min(K, d)³) a draw."""
    d, k = require_int("dim", dim, 1), require_int("support", support, 1)
    seed, draws = require_int("seed", seed, 0), require_int("draws", draws, 2)
    beta = require_real("input_scale", input_scale, 0.0, strict=True)
    m = min(k, d)
    if m > ISOTROPIC_MAX_EIGENVALUES:
        raise ParameterError("support", k, f"min(K, d) <= {ISOTROPIC_MAX_EIGENVALUES} (an m × m Wishart a draw)")
    rng = np.random.default_rng(seed)
    sigma = np.concatenate([np.linalg.eigvalsh(wishart_identity(m, max(k, d), min(CHUNK_DRAWS, draws - start), rng))
                            for start in range(0, draws, CHUNK_DRAWS)])  # (draws, m)
    sigma = np.clip(sigma, 0.0, None) * (beta / k)  # the non-zero eigenvalues of Ŝ

    def values(lam: float) -> np.ndarray:  # E[ℓ(X) | σ] per draw, (draws,)
        w2 = 1 / (sigma + lam) ** 2
        signal = trace_c / d * (lam**2 * w2.sum(1) + (d - m))  # the d − m zero σ_i: λ² · 1/λ² each
        return 0.5 * (beta * (signal + noise_var / k * (sigma * w2).sum(1)) + noise_var)

    return _brent_on_log_lambda(values, trace_c / d, noise_var, k,
                                f"Brent on log λ over {draws} common draws of Ŝ's eigenvalues (Wishart_{m}, Bartlett) "
                                f"at seed {seed}; exact given them, the rotation averaged out (Σx = βI)")


CHUNK_DRAWS = 100_000  # eigenvalue draws per batch


def marchenko_pastur_ridge_loss(dim: int, support: int, lam: float, task_var: float, noise_var: float) -> RidgeLoss:
    """½ d [−λ²v m'(λ) + (s²/K)(m(λ) + λ m'(λ))] + ½s² for Σx = I, Λ = λI, Σw = vI, θ = μ: an approximation."""
    d, k = require_int("dim", dim, 1), require_int("support", support, 1)
    lam = require_real("lam", lam, 0.0, strict=True)
    v, s2 = require_real("task_var", task_var, 0.0), require_real("noise_var", noise_var, 0.0)
    gamma = d / k
    a = 1 - gamma + lam
    root = math.sqrt(a * a + 4 * gamma * lam)
    m = (root - a) / (2 * gamma * lam)  # ∫ dF/(σ + λ)
    dm = ((a + 2 * gamma) / root - 1) / (2 * gamma * lam) - m / lam  # m'(λ) = −∫ dF/(σ + λ)²
    excess = d * (-lam**2 * v * dm + s2 / k * (m + lam * dm))
    return RidgeLoss(0.5 * (excess + s2), 0.0, METHODS[4], f"γ = d/K = {gamma:.4g}: the Marchenko–Pastur limit")


def penalty_matrix(family: LinearTaskFamily, lam) -> np.ndarray:
    """Λ (d, d) from a scalar λ (λI), a vector (diag) or a symmetric matrix; validated (module doc)."""
    d = family.dim
    arr = np.asarray(lam, float)
    if arr.ndim == 0:
        arr = float(arr) * np.eye(d)
    elif arr.shape == (d,):
        arr = np.diag(arr)
    if arr.shape != (d, d) or not np.all(np.isfinite(arr)):
        raise ParameterError("lam", arr.shape if arr.shape != (d, d) else "non-finite entries",
                             f"a finite scalar, a length-{d} vector or a ({d}, {d}) matrix")
    if not np.allclose(arr, arr.T, rtol=0, atol=1e-12 * max(1.0, np.abs(arr).max())):
        raise ParameterError("lam", "non-symmetric matrix", "a symmetric positive semi-definite Λ")
    arr = (arr + arr.T) / 2
    vals = np.linalg.eigvalsh(arr)
    if vals.min() < -1e-12 * max(1.0, vals.max()):
        raise ParameterError("lam", f"min eigenvalue {vals.min():.3g}", "a positive semi-definite Λ")
    finite_k = not family.infinite_support
    if finite_k and vals.min() <= 1e-12 * max(1.0, vals.max()) and (np.any(arr) or family.support <= d + 1):
        raise ParameterError("lam", f"singular Λ at K = {family.support}",
                             f"Λ positive definite, or Λ = 0 with K > d + 1 = {d + 1} (least squares), or K = ∞")
    return arr


def _monte_carlo(family: LinearTaskFamily, penalty: np.ndarray, c: np.ndarray, draws: int,
                 seed: int) -> tuple[float, float]:
    """Mean and standard error of ℓ(X) over ``draws`` support inputs X."""
    samples = np.concatenate(list(_loss_draws(family, penalty, c, draws, seed)))
    return float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(draws))


def _loss_draws(family: LinearTaskFamily, penalty: np.ndarray, c: np.ndarray, draws: int, seed: int):
    """ℓ(X) for ``draws`` X, in chunks: Σ (BΣxB) ∘ (ΛCΛ + (s²/K)Ŝ), halved, plus ½s² (module doc)."""
    for x_hat in _sample_moments(family, draws, seed):  # Ŝ, (n, d, d)
        yield _given_moments(family, penalty, c, x_hat, family.support)


def _given_moments(family: LinearTaskFamily, penalty: np.ndarray, c: np.ndarray, x_hat: np.ndarray,
                   k: int) -> np.ndarray:
    """ℓ(X) from Ŝ (…, d, d): ½[Σ (BΣxB) ∘ (ΛCΛ + (s²/K)Ŝ)] + ½s² (B and Ŝ symmetric), (…)."""
    b = np.linalg.inv(x_hat + penalty)  # (…, d, d)
    sandwich = b @ family.input_cov @ b  # BΣxB
    weight = penalty @ c @ penalty + family.noise_var / k * x_hat  # ΛCΛ + (s²/K)Ŝ
    return 0.5 * (np.sum(sandwich * weight, axis=(-2, -1)) + family.noise_var)


def _sample_moments(family: LinearTaskFamily, draws: int, seed: int):
    """Ŝ = XᵀX/K for ``draws`` support sets X = G Aᵀ (Σx = AAᵀ), G standard normal from ``seed``, in chunks."""
    d, k = family.dim, family.support
    rng = np.random.default_rng(seed)
    chunk = max(1, FLOATS_PER_CHUNK // (d * max(d, k)))
    for start in range(0, draws, chunk):
        x = rng.standard_normal((min(chunk, draws - start), k, d)) @ family.input_factor.T  # (n, K, d)
        yield x.transpose(0, 2, 1) @ x / k


def _scalar_draws(family: LinearTaskFamily, draws: int, seed: int) -> list:
    """Per chunk of X: Ŝ's eigenvalues σ (n, d), P = (UᵀΣxU) ∘ (UᵀΣwU) (n, d, d; its diagonal (n, d) when Σx = I)
    and q = diag(UᵀΣxU)·σ (n, d)."""
    out = []
    for x_hat in _sample_moments(family, draws, seed):
        sigma, u = np.linalg.eigh(x_hat)  # (n, d), (n, d, d)
        sigma = np.clip(sigma, 0.0, None)
        ut = u.transpose(0, 2, 1)
        sw = ut @ family.task_cov @ u  # UᵀΣwU, (n, d, d)
        if family.isotropic_inputs:  # UᵀΣxU = I: P is diagonal, kept as (n, d)
            out.append((sigma, np.diagonal(sw, axis1=1, axis2=2).copy(), sigma))
            continue
        sx = ut @ family.input_cov @ u  # (n, d, d)
        out.append((sigma, sx * sw, np.diagonal(sx, axis1=1, axis2=2) * sigma))
    return out


def _scalar_values(family: LinearTaskFamily, draws_of_x: list, lam: float) -> np.ndarray:
    """ℓ(X) at θ = μ, Λ = λI per draw: ½[λ² wᵀPw + (s²/K) Σ q w²] + ½s², w_i = 1/(σ_i + λ) (module doc), (draws,)."""
    parts = []
    for sigma, p, q in draws_of_x:
        w = 1 / (sigma + lam)  # (n, d)
        signal = np.sum(p * w**2, 1) if p.ndim == 2 else np.einsum("ni,nij,nj->n", w, p, w)
        value = lam**2 * signal + family.noise_var / family.support * np.sum(q * w**2, 1)
        parts.append(0.5 * (value + family.noise_var))
    return np.concatenate(parts)


def _check_theta(family: LinearTaskFamily, theta) -> np.ndarray:
    if theta is None:
        return family.task_mean
    v = np.asarray(theta, float)
    if v.shape != (family.dim,) or not np.all(np.isfinite(v)):
        raise ParameterError("theta", v.shape if v.shape != (family.dim,) else "non-finite entries",
                             f"a finite vector of length d = {family.dim}")
    return v
