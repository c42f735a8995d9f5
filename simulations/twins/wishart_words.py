"""Monte-Carlo twins of theory.wishart_words: words in Ŝ = XᵀX/K and fixed matrices, multiplied literally.

Rows of X are x ~ N(0, Σ) (a Cholesky factor times standard normals), K rows per draw, float64;
each draw forms Ŝ and the literal matrix product, and the expectation is an average over
independent draws with its standard error. The k-step loss's twin is
simulations.twins.shallow_maml.estimate_post_adaptation_loss (the literal inner loop).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from simulations.statistics import Estimate
from simulations.tasks import make_generator

CHUNK = 20_000  # draws per batched call: bounds memory at about CHUNK·(K·d + 2d²) floats


def _sample_moments(sigma: np.ndarray, support: int, n_draws: int, seed: int):
    """Chunks of independent Ŝ = XᵀX/K, each (n, d, d)."""
    gen = make_generator(seed)
    root = torch.as_tensor(np.linalg.cholesky(sigma))
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        x = torch.randn(n, support, sigma.shape[0], generator=gen, dtype=torch.float64) @ root.T  # (n, K, d)
        yield x.transpose(1, 2) @ x / support  # (n, d, d)


def estimate_word_moment(sigma: np.ndarray, matrices: Sequence[np.ndarray], support: int, probe: np.ndarray,
                         n_draws: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.wishart_words.word_moment, contracted: E tr(B Ŝ A₁ Ŝ ⋯ A_{m−1} Ŝ) for a probe B."""
    mats = [torch.as_tensor(np.asarray(a, float)) for a in matrices]
    probe_t = torch.as_tensor(np.asarray(probe, float))
    samples = []
    for s_hat in _sample_moments(sigma, support, n_draws, seed):
        word = s_hat
        for a in mats:
            word = word @ a @ s_hat  # (n, d, d)
        samples.append(torch.einsum("ij,nji->n", probe_t, word))
    return Estimate.from_samples(torch.cat(samples))


def estimate_word_trace_moment(sigma: np.ndarray, matrices: Sequence[np.ndarray], support: int,
                               n_draws: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.wishart_words.word_trace_moment: E tr(Ŝ A₁ Ŝ A₂ ⋯ Ŝ A_m)."""
    mats = [torch.as_tensor(np.asarray(a, float)) for a in matrices]
    samples = []
    for s_hat in _sample_moments(sigma, support, n_draws, seed):
        word = torch.eye(sigma.shape[0], dtype=torch.float64)
        for a in mats:
            word = word @ s_hat @ a  # (n, d, d)
        samples.append(word.diagonal(dim1=1, dim2=2).sum(-1))
    return Estimate.from_samples(torch.cat(samples))
