"""Seeded, batched samplers for the linear task family (regression and separable classification).

Standard normals are drawn in float32 (five times cheaper than float64, and the sampler is a
fixed cost of every meta-step) from a ``torch.Generator``; everything after is computed in
float64 and cast at the end, so float32 and float64 runs at the same seed see the same tasks.
The float32 draws are exact samples of a distribution within ~1e-7 (relative) of the Gaussian,
far below any Monte-Carlo error here.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from theory.finite_tasks import TaskSets
from theory.ground.errors import ParameterError, require_real
from theory.task_family import LinearTaskFamily


@dataclass(frozen=True)
class TaskBatch:
    """A meta-batch of tasks: support and query sets (and each task's true weights, where known).

    Linear tasks: x (T, K, d), y (T, K) real or ±1. Few-shot vision episodes: x (T, N·K, C, H, W)
    and integer class labels y (T, N·K); ``weights`` is None there.
    """

    x_support: torch.Tensor  # (T, K, d)
    y_support: torch.Tensor  # (T, K)
    x_query: torch.Tensor  # (T, Q, d)
    y_query: torch.Tensor  # (T, Q)
    weights: torch.Tensor | None = None  # (T, d), w_τ

    @property
    def n_tasks(self) -> int:
        return self.x_support.shape[0]

    def to(self, device=None, dtype=None) -> TaskBatch:
        """Move to ``device``; cast floating-point tensors to ``dtype`` (integer labels keep theirs)."""

        def move(t):
            if t is None:
                return None
            return t.to(device=device, dtype=dtype if dtype is not None and t.is_floating_point() else None)

        return TaskBatch(*(move(t) for t in (self.x_support, self.y_support, self.x_query, self.y_query,
                                             self.weights)))


def make_generator(seed: int) -> torch.Generator:
    """A CPU generator at ``seed``: the one source of randomness for a sampler call."""
    return torch.Generator().manual_seed(int(seed))


def sample_task_weights(family: LinearTaskFamily, n_tasks: int, gen: torch.Generator) -> torch.Tensor:
    """w_τ = μ + F z, z ~ N(0, I_r); returns (T, d) float64."""
    f = torch.as_tensor(family.task_factor)  # (d, r)
    z = _standard_normal((n_tasks, family.rank), gen)  # (T, r)
    return torch.as_tensor(family.task_mean) + z @ f.T  # (T, d)


def sample_inputs(family: LinearTaskFamily, shape: tuple, gen: torch.Generator) -> torch.Tensor:
    """x = A g, g ~ N(0, I_d); returns (*shape, d) float64.

    A = I exactly (isotropic inputs, the default) skips the product: g @ Iᵀ = g bit for bit, since each
    entry is g_i · 1 plus exact zeros, so the draws are the same and a (d × d) product is saved.
    """
    g = _standard_normal((*shape, family.dim), gen)
    factor = family.input_factor
    if np.array_equal(factor, np.eye(family.dim)):
        return g
    return g @ torch.as_tensor(factor).T


def sample_regression_tasks(family: LinearTaskFamily, n_tasks: int, seed_or_gen,
                            dtype: torch.dtype = torch.float64) -> TaskBatch:
    """Linear-regression tasks: y = w_τᵀx + ε, ε ~ N(0, s²), K support and Q query points each."""
    _require_finite_support(family)
    gen = _as_generator(seed_or_gen)
    w = sample_task_weights(family, n_tasks, gen)  # (T, d)
    x = sample_inputs(family, (n_tasks, family.support + family.query), gen)  # (T, K+Q, d)
    noise = family.noise_var**0.5 * _standard_normal(x.shape[:2], gen)
    y = torch.einsum("tnd,td->tn", x, w) + noise  # (T, K+Q)
    return _split(family.support, x, y, w).to(dtype=dtype)


def sample_classification_tasks(family: LinearTaskFamily, n_tasks: int, seed_or_gen,
                                dtype: torch.dtype = torch.float64) -> TaskBatch:
    """Linearly separable binary tasks: y = sign(w_τᵀx) ∈ {−1, +1} (noise_var flips nothing).

    With μ = 0 the classes are balanced; the separating hyperplane passes through 0,
    so a bias-free linear model can reach zero error on every task.
    """
    _require_finite_support(family)
    gen = _as_generator(seed_or_gen)
    w = sample_task_weights(family, n_tasks, gen)
    x = sample_inputs(family, (n_tasks, family.support + family.query), gen)
    margin = torch.einsum("tnd,td->tn", x, w)
    y = torch.where(margin >= 0, 1.0, -1.0).to(torch.float64)
    return _split(family.support, x, y, w).to(dtype=dtype)


def _standard_normal(shape: tuple, gen: torch.Generator) -> torch.Tensor:
    """N(0, 1) draws made in float32 and returned in float64 (see the module doc)."""
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(torch.float64)


def _split(k: int, x: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> TaskBatch:
    return TaskBatch(x[:, :k], y[:, :k], x[:, k:], y[:, k:], w)


def _as_generator(seed_or_gen) -> torch.Generator:
    return seed_or_gen if isinstance(seed_or_gen, torch.Generator) else make_generator(seed_or_gen)


def _require_finite_support(family: LinearTaskFamily) -> None:
    if family.infinite_support:
        raise ParameterError("support", family.support, "a finite integer >= 1 to sample tasks (K = ∞ is theory only)")


# -- finite task sets (Bernacchia 2021; theory.finite_tasks): numpy draws, a leading (runs,) axis ----------
def offset_init(dim: int, init_offset: float, rng: np.random.Generator, task_mean=None) -> np.ndarray:
    """ω₀ = w₀ + init_offset · u, u a unit vector drawn from ``rng`` (the expectations do not depend on u)."""
    mean = np.zeros(dim) if task_mean is None else np.asarray(task_mean, float)
    direction = rng.standard_normal(dim)
    return mean + require_real("init_offset", init_offset, 0.0) * direction / np.linalg.norm(direction)


def sample_training_sets(sets: TaskSets, runs: int, rng: np.random.Generator, task_mean=None) -> dict:
    """``runs`` independent training sets of m tasks (theory.finite_tasks.TaskSets), as numpy arrays with a
    leading (runs,) axis."""
    d, m = sets.dim, sets.tasks
    mean = np.zeros(d) if task_mean is None else np.asarray(task_mean, float)
    weights = mean + np.sqrt(sets.task_var) * rng.standard_normal((runs, m, d))  # (R, m, d)
    out = {}
    noise_var = sets.noise_var
    for part, n in (("support", sets.train_support), ("query", sets.train_query)):
        x = rng.standard_normal((runs, m, n, d))  # (R, m, n, d)
        out[f"x_{part}"] = x
        out[f"y_{part}"] = (x @ weights[..., None])[..., 0] + np.sqrt(noise_var) * rng.standard_normal((runs, m, n))
    return out
