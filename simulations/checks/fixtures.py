"""Fixtures several verify check modules share: random matrices, nets and families at fixed seeds, and the
meta-learning setting of the meta-trained checks. Check modules import these, never each other."""
from __future__ import annotations

from itertools import pairwise

import numpy as np

from simulations.tasks import sample_regression_tasks
from theory.task_family import LinearTaskFamily

SUBSPACE = {"dim": 20, "support": 5, "query": 10, "rank": 2}  # the meta-trained checks' subspace tasks
GENERAL = {"dim": 6, "support": 4, "query": 10, "noise_var": 0.25}


def random_spd(dim: int, rng: np.random.Generator) -> np.ndarray:
    """A random symmetric positive-definite matrix AAᵀ/d + I/2, (d, d)."""
    a = rng.standard_normal((dim, dim))
    return a @ a.T / dim + 0.5 * np.eye(dim)


def random_net(dims: list[int], seed: int, k: int = 6, labels: str = "real"):
    """Layers W_l ~ N(0, 1/h_{l-1}) (bottom first), inputs x (K, in), labels y (K,) real or ±1."""
    rng = np.random.default_rng(seed)
    layers = [rng.standard_normal((b, a)) / np.sqrt(a) for a, b in pairwise(dims)]
    x = rng.standard_normal((k, dims[0]))
    y = rng.standard_normal(k) if labels == "real" else np.sign(rng.standard_normal(k))
    return layers, x, y


def general_family() -> tuple[LinearTaskFamily, np.ndarray]:
    """d = 6, K = 4, s² = 0.25 with random Σx, Σw, μ, and an initialisation θ ≠ μ (fixed seed)."""
    rng = np.random.default_rng(5)
    sigma_x, sigma_w = random_spd(6, rng), random_spd(6, rng)
    family = LinearTaskFamily.from_covariances(task_cov=sigma_w, input_cov=sigma_x,
                                               task_mean=rng.standard_normal(6), **GENERAL)
    return family, 0.5 * rng.standard_normal(6)


def regression_sampler(family: LinearTaskFamily):
    """(n_tasks, generator) -> TaskBatch for meta_train and evaluate."""
    return lambda n, gen: sample_regression_tasks(family, n, gen)
