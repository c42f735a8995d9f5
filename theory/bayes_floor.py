"""The Bayes floor: the lowest expected query loss any rule that sees a task's K support points reaches.

With the prior w_τ ~ N(μ, Σw), Σw = F Fᵀ (F is d × r), and y = X w_τ + ε, ε ~ N(0, s² I_K), the
posterior of w_τ given the support set (X, y) is Gaussian with

  mean  w_post = μ + Σw Xᵀ (X Σw Xᵀ + s² I)⁻¹ (y − X μ),
  cov   Σ_post = Σw − Σw Xᵀ (X Σw Xᵀ + s² I)⁻¹ X Σw,

and no estimator has a lower expected query loss than w_post (the Bayes risk):

  L_Bayes = ½ (E_X tr(Σx Σ_post) + s²),   X: K rows x ~ N(0, Σx);

it depends on neither μ nor any initialisation θ. Derived here: with B = X F (K × r), the push-through
identity gives Σ_post = F · s²(BᵀB + s² I_r)⁻¹ · Fᵀ (s² > 0) and F (I − B⁺B) Fᵀ (s² = 0, the limit), and
the rows of B are N(0, G), G = Fᵀ Σx F (r × r). Rotating to G's eigenvectors, only its m non-zero
eigenvalues D = diag(g₁ … g_m) matter: with Z (K × m) standard normal,

  E tr(Σx Σ_post) = E tr((D⁻¹ + Zᵀ Z / s²)⁻¹)          (s² > 0),
                  = tr D − E tr((Z D Zᵀ)⁻¹ Z D² Zᵀ)     (s² = 0; 0 when K ≥ m, m is rank(Σw) for Σx ≻ 0).

How ``bayes_optimal_loss`` evaluates it (``method``):

* exact: K = ∞ (the posterior concentrates on w_τ: L = ½ s²); m = 0; s² = 0 and K ≥ m (Σ_post = 0
  almost surely: L = 0); s² = 0, K < m and D = g I (the null space of Z is a uniform random
  (m − K)-plane: L = ½ g (m − K));
* quadrature, m = 1 (g = uᵀΣx u · v for Σw = v u uᵀ): with q ~ χ²_K and c = g/s²,
  E tr(Σx Σ_post) = g E[1/(1 + c q)] = g ∫₀^∞ e^{−λ} (1 + 2cλ)^{−K/2} dλ   (1/(1+cq) = ∫ e^{−λ(1+cq)} dλ
  and E e^{−tq} = (1 + 2t)^{−K/2}); equivalently g · z e^z E_{K/2}(z) with z = 1/(2c) (tested for even K);
* monte-carlo, otherwise: Zᵀ Z ~ Wishart_m(I, K) drawn by the Bartlett decomposition (K ≥ m) or from Z,
  the trace computed exactly per draw (Rao–Blackwellised: no w_τ or labels are drawn); ``ci95`` is the
  95% half-width. No deterministic route for m ≥ 2 is given: the joint eigenvalue density of the real
  Wishart matrix makes E tr((aI + W)⁻¹) a m-fold integral.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from theory.ground.errors import ParameterError, require_int
from theory.ground.statistics import Z_REPORT
from theory.task_family import LinearTaskFamily

METHODS = ("exact", "quadrature", "monte-carlo")
CHUNK = 100_000  # Monte-Carlo draws per batch: bounds memory at about CHUNK·max(K, m)·m floats
RANK_TOL = 1e-12  # eigenvalues of G = FᵀΣxF below RANK_TOL · max(1, largest) count as 0


@dataclass(frozen=True)
class BayesFloor:
    """L_Bayes = ½(E tr(Σx Σ_post) + s²), how it was computed, and its 95% half-width (0 when not Monte-Carlo)."""

    value: float  # the Bayes-optimal expected query loss per example, noise included
    ci95: float  # 95% half-width of ``value`` (Monte-Carlo over support sets), 0.0 otherwise
    method: str  # one of METHODS
    note: str  # one line: which case of the module doc applied

    @property
    def stderr(self) -> float:
        """The standard error of ``value`` (ci95 / 1.96; 0 when exact or by quadrature)."""
        return self.ci95 / Z_REPORT

    def __str__(self) -> str:
        if self.ci95 > 0:
            return f"{self.value:.6g} ± {self.ci95:.2g} (Monte-Carlo over support sets)"
        return f"{self.value:.6g} ({self.method})"


def bayes_optimal_loss(family: LinearTaskFamily, n_samples: int = 400_000, seed: int = 0) -> BayesFloor:
    """The Bayes floor L_Bayes = ½(E tr(Σx Σ_post) + s²) of ``family`` (module doc); n_samples, seed: Monte-Carlo."""
    if not isinstance(family, LinearTaskFamily):
        raise ParameterError("family", type(family).__name__, "a LinearTaskFamily")
    return spectral_bayes_floor(signal_eigenvalues(family), family.support, family.noise_var, n_samples, seed)


def spectral_bayes_floor(g: np.ndarray, support: int | float, noise_var: float, n_samples: int = 400_000,
                         seed: int = 0) -> BayesFloor:
    """The Bayes floor from the non-zero eigenvalues g (descending) of G = FᵀΣxF, K and s² alone (module doc): all
    it depends on, so a family stored without d × d matrices (theory.structured_family) gets it in O(r³)."""
    n_samples = require_int("n_samples", n_samples, 2)
    seed = require_int("seed", seed, 0)
    s2, g = noise_var, np.asarray(g, float)
    m = g.size

    def floor(excess: float, method: str, note: str, ci95: float = 0.0) -> BayesFloor:
        return BayesFloor(0.5 * (excess + s2), 0.5 * ci95, method, note)

    if math.isinf(support):
        return floor(0.0, "exact", "K = ∞: the posterior concentrates on w_τ, Σ_post → 0")
    k = support
    if m == 0:
        return floor(0.0, "exact", "Σx Σw = 0: no task variation to learn")
    if s2 == 0 and k >= m:
        return floor(0.0, "exact", f"s² = 0 and K = {k} ≥ rank {m}: Σ_post = 0 almost surely")
    if s2 == 0 and np.allclose(g, g[0], rtol=1e-12, atol=0):
        return floor(g[0] * (m - k), "exact", f"s² = 0, K = {k} < rank {m}, isotropic G: g (m − K)")
    if m == 1:
        return floor(_rank_one_excess(g[0], k, s2), "quadrature", "rank 1: g E[1/(1 + g χ²_K / s²)] by quadrature")
    mean, stderr = _monte_carlo_excess(g, k, s2, n_samples, seed)
    return floor(mean, "monte-carlo", f"rank {m}: Monte-Carlo over {n_samples} support sets", Z_REPORT * stderr)


def signal_eigenvalues(family: LinearTaskFamily) -> np.ndarray:
    """The non-zero eigenvalues g₁ ≥ … ≥ g_m of G = Fᵀ Σx F, (m,): all the floor depends on besides K and s²."""
    f = family.task_factor  # (d, r)
    g = np.linalg.eigvalsh(f.T @ family.input_cov @ f)[::-1]  # (r,), descending
    return g[g > RANK_TOL * max(1.0, g[0])] if g.size else g


def _rank_one_excess(g: float, k: int, s2: float) -> float:
    """g ∫₀^∞ e^{−λ} (1 + 2cλ)^{−K/2} dλ with c = g/s² (= g E[1/(1 + c χ²_K)]).

    Integrated in t = λ(1 + cK): the integrand's width is about 1/(1 + cK) in λ, about 1 in t, for every K and c.
    """
    c, width = g / s2, 1 / (1 + g / s2 * k)

    def integrand(t: float) -> float:
        lam = t * width
        return math.exp(-lam - k / 2 * math.log1p(2 * c * lam))

    from scipy import integrate  # here, not at the top: explore --theory-only starts faster without it

    value, _ = integrate.quad(integrand, 0, math.inf, epsabs=0, epsrel=1e-12, limit=200)
    return g * width * value


def _monte_carlo_excess(g: np.ndarray, k: int, s2: float, n: int, seed: int) -> tuple[float, float]:
    """Mean and standard error of tr(Σx Σ_post) over n support sets (module doc), in the m-dim eigenbasis of G."""
    rng = np.random.default_rng(seed)
    samples = np.concatenate([_trace_draws(g, k, s2, min(CHUNK, n - start), rng) for start in range(0, n, CHUNK)])
    return float(samples.mean()), float(samples.std(ddof=1) / math.sqrt(n))


def _trace_draws(g: np.ndarray, k: int, s2: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of tr(Σx Σ_post) given X, (n,)."""
    m = g.size
    if s2 == 0:  # K < m here: tr D − tr((Z D Zᵀ)⁻¹ Z D² Zᵀ)
        z = rng.standard_normal((n, k, m))  # (n, K, m)
        zd = z * g  # Z D, (n, K, m)
        explained = np.linalg.solve(zd @ z.transpose(0, 2, 1), zd @ zd.transpose(0, 2, 1))  # (n, K, K)
        return g.sum() - np.trace(explained, axis1=1, axis2=2)
    wishart = wishart_identity(m, k, n, rng)  # ZᵀZ, (n, m, m)
    precision = wishart / s2 + np.diag(1 / g)  # D⁻¹ + ZᵀZ/s², (n, m, m)
    return np.trace(np.linalg.inv(precision), axis1=1, axis2=2)


def wishart_identity(m: int, k: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """n draws of Wishart_m(I, K) = ZᵀZ, (n, m, m): Bartlett's L Lᵀ for K ≥ m (cost free of K), else from Z."""
    if k < m:
        z = rng.standard_normal((n, k, m))  # (n, K, m)
        return z.transpose(0, 2, 1) @ z
    lower = np.tril(rng.standard_normal((n, m, m)), -1)  # (n, m, m), N(0, 1) below the diagonal
    idx = np.arange(m)
    lower[:, idx, idx] = np.sqrt(rng.chisquare(k - idx, size=(n, m)))  # L_ii² ~ χ²_{K−i}, i = 0 … m−1
    return lower @ lower.transpose(0, 2, 1)
