"""The canonical linear task family, shared by every closed form and its simulation twin.

Setting (README, "The task family"):
    x ~ N(0, Σx) in R^d,      Σx = A Aᵀ
    w_τ = μ + F z,            z ~ N(0, I_r),  so Σw = F Fᵀ
    y = w_τᵀ x + ε,           ε ~ N(0, s²)
Each task has K support and Q query points; the per-task loss is half the mean squared error.
K may be math.inf for the theory alone: the inner step then uses the population gradient
Σx(w − w_τ) (no sampled support set, so no simulation twin samples such a family).

The family stores the *factors* A and F: the theory reads Σx and Σw from them, the
sampler draws x = A g and w = μ + F z with them, so both halves see one object.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from theory.ground.errors import ParameterError, require_int, require_real
from theory.ground.memory import require_square_matrices_fit


@dataclass(frozen=True, eq=False)
class LinearTaskFamily:
    """Gaussian linear-regression tasks: dimensions, covariances and noise (see module doc)."""

    dim: int  # d, input dimension
    support: int | float  # K, support points per task (the inner loop sees these); math.inf: theory only
    query: int  # Q, query points per task (the meta-loss sees these)
    noise_var: float = 0.0  # s², label noise variance
    input_factor: np.ndarray = field(default=None, repr=False)  # A (d, d): Σx = A Aᵀ; None = I
    task_mean: np.ndarray = field(default=None, repr=False)  # μ (d,); None = 0
    task_factor: np.ndarray = field(default=None, repr=False)  # F (d, r): Σw = F Fᵀ; None = I

    def __post_init__(self):
        d = require_square_matrices_fit("dim", require_int("dim", self.dim, 1))
        object.__setattr__(self, "dim", d)
        if not (isinstance(self.support, float) and math.isinf(self.support) and self.support > 0):
            object.__setattr__(self, "support", require_int("support", self.support, 1))
        object.__setattr__(self, "query", require_int("query", self.query, 1))
        object.__setattr__(self, "noise_var", require_real("noise_var", self.noise_var, 0.0))
        a = np.eye(d) if self.input_factor is None else np.asarray(self.input_factor, float)
        mu = np.zeros(d) if self.task_mean is None else np.asarray(self.task_mean, float)
        f = np.eye(d) if self.task_factor is None else np.asarray(self.task_factor, float)
        if f.ndim == 1:
            f = f[:, None]
        _check_shape("input_factor", a, (d, d))
        _check_shape("task_mean", mu, (d,))
        if f.ndim != 2 or f.shape[0] != d:
            raise ParameterError("task_factor", f.shape, f"a ({d}, r) matrix")
        for name, value in (("input_factor", a), ("task_mean", mu), ("task_factor", f)):
            if not np.all(np.isfinite(value)):
                raise ParameterError(name, "non-finite entries", "finite entries")
        object.__setattr__(self, "input_factor", a)
        object.__setattr__(self, "task_mean", mu)
        object.__setattr__(self, "task_factor", f)

    # -- the covariances the closed forms use ------------------------------------------
    @cached_property  # the family is frozen, so its covariances are computed once
    def input_cov(self) -> np.ndarray:
        """Σx = A Aᵀ, (d, d), read-only."""
        return _read_only(self.input_factor @ self.input_factor.T)

    @cached_property
    def task_cov(self) -> np.ndarray:
        """Σw = F Fᵀ, (d, d), read-only."""
        return _read_only(self.task_factor @ self.task_factor.T)

    @property
    def rank(self) -> int:
        """r, the number of columns of F (the task subspace's dimension when F is orthonormal)."""
        return self.task_factor.shape[1]

    @property
    def infinite_support(self) -> bool:
        """Whether K = ∞: the inner step uses the population gradient (theory only)."""
        return math.isinf(self.support)

    @cached_property
    def isotropic_inputs(self) -> bool:
        """Whether Σx = I (the case where k-step losses have exact closed forms here)."""
        return bool(np.allclose(self.input_cov, np.eye(self.dim), atol=1e-12))

    def error_second_moment(self, theta: np.ndarray) -> np.ndarray:
        """E[(θ − w_τ)(θ − w_τ)ᵀ] = (θ − μ)(θ − μ)ᵀ + Σw, (d, d)."""
        delta = np.asarray(theta, float).reshape(self.dim) - self.task_mean
        return np.outer(delta, delta) + self.task_cov

    # -- constructors ----------------------------------------------------------------------
    @classmethod
    def subspace(cls, dim: int, support: int, query: int = 20, rank: int | None = None,
                 noise_var: float = 0.0, mean_norm: float = 0.0, task_scale: float = 1.0,
                 input_cov: np.ndarray | None = None, seed: int = 0) -> LinearTaskFamily:
        """Tasks on a random rank-r subspace: F = task_scale · U, U (d, r) orthonormal from ``seed``.

        ``mean_norm`` sets ‖μ‖ (μ drawn in a random direction from the same seed; 0 gives μ = 0).
        ``input_cov`` (d, d) symmetric positive definite, default I.
        """
        dim = require_square_matrices_fit("dim", require_int("dim", dim, 1))
        rank = dim if rank is None else require_int("rank", rank, 1, dim)
        require_real("task_scale", task_scale, 0.0, strict=True)
        require_real("mean_norm", mean_norm, 0.0)
        rng = np.random.default_rng(seed)
        u, _ = np.linalg.qr(rng.standard_normal((dim, rank))) if rank < dim else (np.eye(dim), None)
        direction = rng.standard_normal(dim)
        mu = mean_norm * direction / np.linalg.norm(direction)
        return cls(dim, support, query, noise_var, input_factor=_sqrt_spd("input_cov", input_cov, dim),
                   task_mean=mu, task_factor=task_scale * u)

    @classmethod
    def from_covariances(cls, dim: int, support: int, query: int, task_cov: np.ndarray,
                         input_cov: np.ndarray | None = None, task_mean: np.ndarray | None = None,
                         noise_var: float = 0.0) -> LinearTaskFamily:
        """A family with a general task covariance Σw (symmetric positive semi-definite)."""
        return cls(dim, support, query, noise_var, input_factor=_sqrt_spd("input_cov", input_cov, dim),
                   task_mean=task_mean, task_factor=_psd_factor("task_cov", task_cov, dim))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _check_shape(name: str, value: np.ndarray, shape: tuple) -> None:
    if value.shape != shape:
        raise ParameterError(name, value.shape, f"shape {shape}")


def _psd_factor(name: str, cov, dim: int) -> np.ndarray:
    """F with F Fᵀ = cov, from the eigendecomposition (zero eigenvalues dropped)."""
    cov = np.asarray(cov, float)
    _check_shape(name, cov, (dim, dim))
    if not np.allclose(cov, cov.T, atol=1e-10):
        raise ParameterError(name, "non-symmetric matrix", "a symmetric positive semi-definite matrix")
    vals, vecs = np.linalg.eigh(cov)
    if vals.min() < -1e-10 * max(1.0, vals.max()):
        raise ParameterError(name, f"min eigenvalue {vals.min():.3g}", "a positive semi-definite matrix")
    keep = vals > 1e-12 * max(1.0, vals.max())
    return vecs[:, keep] * np.sqrt(vals[keep])


def _sqrt_spd(name: str, cov, dim: int) -> np.ndarray | None:
    """Symmetric square root of a positive-definite covariance (None stays None = identity)."""
    if cov is None:
        return None
    factor = _psd_factor(name, cov, dim)
    if factor.shape[1] < dim:
        raise ParameterError(name, "singular matrix", "a positive-definite matrix")
    vals, vecs = np.linalg.eigh(np.asarray(cov, float))
    return (vecs * np.sqrt(vals)) @ vecs.T
