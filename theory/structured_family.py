"""The structured task families stored in O(d r) numbers, and the closed forms of ``explore --theory-only`` on them.

LinearTaskFamily stores dense d × d factors, so its closed forms cost O(d³) time and 8d² bytes a matrix: d = 10⁶
needs terabytes. The families the command line builds without a file are structured:

    Σx = diag(b)                      (--input-spectrum; b = 1, Σx = I, by default),
    Σw = diag(a)                      (--task-spectrum; a rank-d subspace, U = I, is Σw = V·I),
    Σw = F Fᵀ, F = √V·U (d × r)       (the random rank-r subspace, U orthonormal from the seed's Gaussian d × r
                                       matrix by QR: the very U of LinearTaskFamily.subspace),

and every closed form there needs only (derived here, from the stems' dense forms):

* the diagonal of C = Σw (θ = μ): c_i = a_i or ‖F_i‖², and the traces tr(Σxʲ C) = Σ_i b_iʲ c_i;
* the non-zero eigenvalues λ of Σx^½ Σw Σx^½: b_i a_i (diagonal Σw), or the eigenvalues of the r × r matrix
  Fᵀ diag(b) F (the same non-zero spectrum, since AB and BA share it) — these give the optimal preconditioner
  L* = ½[Σλ − Σλ²/(c₁λ + c₂)] + ½s², ANIL's rank-h optimum (the h largest λ) and the Bayes floor (its G's
  eigenvalues are these λ);
* Meta-SGD: with Σx = diag(b) its A = S ∘ E[ŜCŜ] + (s²/K) S ∘ S is diagonal,
  A_ii = b_i (c₁ b_i² c_i + b_i tr(SC)/K) + (s²/K) b_i², and b_vec_i = b_i² c_i, so L = ½[tr SC − Σ b_vec_i²/A_ii] + ½s²
  (a zero A_ii has b_vec_i = 0 and drops out: the least-norm p of theory.meta_sgd);
* the shallow step: a₀ = tr SC, a₁ = tr S²C, a₂ = c₁ tr S³C + (tr S²/K) tr SC + s² tr S²/K (theory.shallow_maml),
  its k-step exact form for Σx = I from d, K, k, tr C and s² (the Wishart trace moments are exact integers in d),
  and K = ∞ from Σx's eigenbasis, here the standard one (weights b_i c_i).

That is O(d r²) time and O(d r) memory (the U of a rank-r subspace), O(d) for diagonal Σw. What has no such form
here is said by NoClosedForm with its reason: k ≥ 2 steps with Σx ≠ I (theory.wishart_words holds d × d
matrices), ANIL with μ ≠ 0 (a numerical search over h(d + 1) weights), depth-2 MAML's optimum, and iMAML's best λ
where Σx is not a multiple of I. ``dense`` gives the LinearTaskFamily of the same setting (small d): the tests
hold every form here to the stems' dense one to 1e-10.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from theory.ground.errors import NoClosedForm, ParameterError, require_int, require_real
from theory.ground.memory import require_vectors_fit
from theory.task_family import LinearTaskFamily

RANK_TOL = 1e-12  # eigenvalues of Σx^½ΣwΣx^½ below this × max(1, the largest) count as 0 (theory.bayes_floor's)
VECTORS = 8  # length-d float64 vectors held at once besides U (b, c, μ, products): the memory check's count


@dataclass(frozen=True, eq=False)
class StructuredFamily:
    """Gaussian linear-regression tasks with Σx = diag(b) and Σw = diag(a) or F Fᵀ (F d × r), stored as vectors."""

    dim: int  # d
    support: int | float  # K (math.inf: the population limit)
    query: int  # Q
    noise_var: float  # s²
    input_diag: np.ndarray = field(repr=False)  # b (d,): Σx = diag(b), b > 0
    task_mean: np.ndarray = field(repr=False)  # μ (d,)
    task_diag: np.ndarray | None = field(default=None, repr=False)  # a (d,): Σw = diag(a); or None
    task_factor: np.ndarray | None = field(default=None, repr=False)  # F (d, r): Σw = F Fᵀ; or None

    def __post_init__(self):
        d = require_int("dim", self.dim, 1)
        if not (isinstance(self.support, float) and math.isinf(self.support) and self.support > 0):
            object.__setattr__(self, "support", require_int("support", self.support, 1))
        require_int("query", self.query, 1)
        require_real("noise_var", self.noise_var, 0.0)
        if (self.task_diag is None) == (self.task_factor is None):
            raise ParameterError("task_cov", "both or neither of task_diag and task_factor", "exactly one")
        for name in ("input_diag", "task_mean", "task_diag"):
            value = getattr(self, name)
            if value is not None and (np.shape(value) != (d,) or not np.all(np.isfinite(value))):
                raise ParameterError(name, np.shape(value), f"a finite vector of length d = {d}")
        if np.any(self.input_diag <= 0) or (self.task_diag is not None and np.any(self.task_diag < 0)):
            raise ParameterError("input_diag" if np.any(self.input_diag <= 0) else "task_diag", "a negative entry",
                                 "Σx's eigenvalues > 0 and Σw's >= 0")
        if self.task_factor is not None and (np.ndim(self.task_factor) != 2 or self.task_factor.shape[0] != d):
            raise ParameterError("task_factor", np.shape(self.task_factor), f"a ({d}, r) matrix")

    # -- constructors: the same draws as LinearTaskFamily's -------------------------------------------
    @classmethod
    def subspace(cls, dim: int, support, query: int, rank: int, noise_var: float = 0.0, mean_norm: float = 0.0,
                 task_scale: float = 1.0, input_diag=None, seed: int = 0) -> StructuredFamily:
        """LinearTaskFamily.subspace's family (same seed, same U and μ) with Σx = diag(``input_diag``) (default I)."""
        dim = require_int("dim", dim, 1)
        rank = require_int("rank", rank, 1, dim)
        require_real("task_scale", task_scale, 0.0, strict=True)
        require_real("mean_norm", mean_norm, 0.0)
        require_vectors_fit("dim", dim, VECTORS + (rank if rank < dim else 0))
        rng = np.random.default_rng(seed)
        u = np.linalg.qr(rng.standard_normal((dim, rank)))[0] if rank < dim else None  # (d, r), as subspace() draws
        direction = rng.standard_normal(dim)
        mu = mean_norm * direction / np.linalg.norm(direction)
        b = np.ones(dim) if input_diag is None else np.asarray(input_diag, float)
        if u is None:
            return cls(dim, support, query, noise_var, b, mu, task_diag=np.full(dim, task_scale**2))
        return cls(dim, support, query, noise_var, b, mu, task_factor=task_scale * u)

    @classmethod
    def diagonal(cls, dim: int, support, query: int, task_diag, input_diag=None, task_mean=None,
                 noise_var: float = 0.0) -> StructuredFamily:
        """Σw = diag(a), Σx = diag(b) (default I), μ (default 0)."""
        dim = require_int("dim", dim, 1)
        require_vectors_fit("dim", dim, VECTORS)
        b = np.ones(dim) if input_diag is None else np.asarray(input_diag, float)
        mu = np.zeros(dim) if task_mean is None else np.asarray(task_mean, float)
        return cls(dim, support, query, noise_var, b, mu, task_diag=np.asarray(task_diag, float))

    def dense(self) -> LinearTaskFamily:
        """The same family as a LinearTaskFamily (dense d × d factors: small d only)."""
        factor = np.diag(np.sqrt(self.task_diag)) if self.task_factor is None else self.task_factor
        return LinearTaskFamily(self.dim, self.support, self.query, self.noise_var,
                                input_factor=np.diag(np.sqrt(self.input_diag)), task_mean=self.task_mean,
                                task_factor=factor)

    # -- what the closed forms read ---------------------------------------------------------------------
    @property
    def infinite_support(self) -> bool:
        return math.isinf(self.support)

    @property
    def inverse_support(self) -> float:
        """1/K (0 at K = ∞)."""
        return 0.0 if self.infinite_support else 1.0 / self.support

    @cached_property
    def task_cov_diagonal(self) -> np.ndarray:
        """diag(Σw), (d,): a, or the squared row norms of F."""
        return self.task_diag if self.task_factor is None else np.einsum("ij,ij->i", self.task_factor,
                                                                         self.task_factor)

    @cached_property
    def input_scale(self) -> float | None:
        """β where Σx = βI (every b_i within 1e-12 of b_1, relatively), else None."""
        b = self.input_diag
        return float(b[0]) if np.all(np.abs(b - b[0]) <= 1e-12 * b[0]) else None

    @cached_property
    def isotropic_inputs(self) -> bool:
        """Σx = I (LinearTaskFamily's test: every |b_i − 1| ≤ 1e-12)."""
        return bool(np.all(np.abs(self.input_diag - 1.0) <= 1e-12))

    def input_trace(self, power: int) -> float:
        """tr(Σx^power) = Σ_i b_i^power."""
        return float(np.sum(self.input_diag**power))

    def trace(self, power: int) -> float:
        """tr(Σx^power Σw) = Σ_i b_i^power c_i (θ = μ: C = Σw)."""
        return float(self.input_diag**power @ self.task_cov_diagonal)

    @cached_property
    def whitened_spectrum(self) -> np.ndarray:
        """The eigenvalues of Σx^½ Σw Σx^½ above the rank tolerance, descending, (≤ min(d, r),)."""
        if self.task_factor is None:
            lam = np.sort(self.input_diag * self.task_diag)[::-1]
        else:
            f = self.task_factor
            lam = np.linalg.eigvalsh(f.T @ (self.input_diag[:, None] * f))[::-1]  # (r,): Fᵀ diag(b) F
        return lam[lam > RANK_TOL * max(1.0, lam[0])] if lam.size else lam


# -- the closed forms (θ = μ) ---------------------------------------------------------------------------
def pre_adaptation_loss(family: StructuredFamily) -> float:
    """½ tr(Σx Σw) + ½ s²."""
    return 0.5 * (family.trace(1) + family.noise_var)


def quadratic_coefficients(family: StructuredFamily) -> tuple[float, float, float]:
    """(a₀, a₁, a₂) of the one-step loss ½(a₀ − 2αa₁ + α²a₂) + ½s² (theory.shallow_maml)."""
    inv, tr_s2 = family.inverse_support, family.input_trace(2)
    a2 = (1 + inv) * family.trace(3) + tr_s2 * inv * family.trace(1) + family.noise_var * tr_s2 * inv
    return family.trace(1), family.trace(2), a2


def post_adaptation_loss(family: StructuredFamily, alpha: float, steps: int = 1) -> float:
    """The shallow loss after k plain steps of size α from θ = μ (theory.shallow_maml's cases)."""
    from theory import shallow_maml  # sympy: imported when a k-step form is asked for

    alpha, steps = require_real("alpha", alpha), require_int("steps", steps, 1)
    if family.infinite_support:
        b = family.input_diag
        return shallow_maml.spectral_population_loss(b, b * family.task_cov_diagonal, family.noise_var, alpha, steps)
    if steps == 1:
        a0, a1, a2 = quadratic_coefficients(family)
        return 0.5 * (a0 - 2 * alpha * a1 + alpha**2 * a2 + family.noise_var)
    _require_isotropic(family, steps)
    return shallow_maml.isotropic_post_adaptation_loss(family.dim, family.support, steps, family.trace(0),
                                                       family.noise_var, alpha)


def optimal_step_size(family: StructuredFamily, steps: int = 1) -> float:
    """α* of the shallow k-step loss at θ = μ (0 when Σw = 0; theory.shallow_maml.optimal_step_size's cases)."""
    from theory import shallow_maml

    steps = require_int("steps", steps, 1)
    _, a1, a2 = quadratic_coefficients(family)
    if a1 == 0:
        return 0.0
    if steps == 1:
        return a1 / a2
    if family.infinite_support:
        b = family.input_diag
        return shallow_maml.spectral_population_optimal_step(b, b * family.task_cov_diagonal, steps)
    _require_isotropic(family, steps)
    return shallow_maml.isotropic_optimal_step(family.dim, family.support, steps, family.trace(0),
                                               family.noise_var, 2 * a1 / a2)


def best_post_adaptation_loss(family: StructuredFamily, steps: int = 1) -> float:
    """The lowest shallow k-step loss any step size reaches, at θ = μ."""
    return post_adaptation_loss(family, optimal_step_size(family, steps), steps)


def preconditioned_best_post_loss(family: StructuredFamily) -> float:
    """L* = ½[Σλ − Σλ²/(c₁λ + c₂)] + ½s² over the whitened spectrum (theory.preconditioned_maml); ½s² at K = ∞."""
    if family.infinite_support:
        return 0.5 * family.noise_var
    return rank_limited_best_post_loss(family, family.dim)


def rank_limited_best_post_loss(family: StructuredFamily, width: int) -> float:
    """L_h = ½[Σλ − Σ_{i≤h} λ_i²/(c₁λ_i + c₂)] + ½s²: the best rank-≤h preconditioned step (theory.anil_width);
    ANIL's best at width h when μ = 0. K = ∞: ½Σ_{i>h} λ_i + ½s²."""
    width = require_int("width", width, 1)
    lam, inv = family.whitened_spectrum, family.inverse_support
    c1, c2 = 1 + inv, (lam.sum() + family.noise_var) * inv
    if c2 == 0 and not family.infinite_support:  # Σw = 0 and s² = 0: nothing to adapt
        return 0.0
    kept = lam[:width]
    return 0.5 * (lam.sum() - np.sum(kept**2 / (c1 * kept + c2)) + family.noise_var)


def meta_sgd_best_post_loss(family: StructuredFamily) -> float:
    """L*_diag = ½[tr SC − Σ_i b_vec_i²/A_ii] + ½s² with Σx = diag(b): A is diagonal (module doc; theory.meta_sgd)."""
    b, c, inv = family.input_diag, family.task_cov_diagonal, family.inverse_support
    moment = (1 + inv) * b**2 * c + family.trace(1) * inv * b  # diag E[ŜCŜ]
    a = b * moment + family.noise_var * inv * b**2
    target = b**2 * c
    kept = a > 1e-12 * max(float(a.max(initial=0.0)), 1e-300)  # the least-norm p: A's null entries drop out
    value = 0.5 * (family.trace(1) - float(np.sum(target[kept] ** 2 / a[kept])) + family.noise_var)
    return max(value, 0.5 * family.noise_var)  # L ≥ ½s²: a value below it is the rounding of an exact ½s²


def _require_isotropic(family: StructuredFamily, steps: int) -> None:
    if not family.isotropic_inputs:
        raise NoClosedForm(f"k = {steps} steps with Σx ≠ I at finite K: the word-moment engine (theory.wishart_words) "
                           "holds d × d matrices; only it or simulation answers")
