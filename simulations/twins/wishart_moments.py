"""Monte-Carlo twins of theory.wishart_moments: sample second moments Ŝ = XᵀX/K drawn literally.

Rows of X are x ~ N(0, Σ) (a Cholesky factor times standard normals), K rows per draw,
float64; the expectation is an average over independent draws with its standard error.
"""
from __future__ import annotations

import numpy as np
import torch

from simulations.statistics import Estimate
from simulations.tasks import make_generator

CHUNK = 20_000  # draws per batched call: bounds memory at about CHUNK·(K·d + d²) floats


def estimate_sample_moment_sandwich(sigma: np.ndarray, a: np.ndarray, support: int, probe: np.ndarray,
                                    n_draws: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.wishart_moments.sample_moment_sandwich, contracted: E tr(B Ŝ A Ŝ) for a probe B."""
    gen = make_generator(seed)
    root = torch.as_tensor(np.linalg.cholesky(sigma))
    a_t, b_t = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(probe, dtype=torch.float64)
    samples = []
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        x = torch.randn(n, support, sigma.shape[0], generator=gen, dtype=torch.float64) @ root.T  # (n, K, d)
        s_hat = x.transpose(1, 2) @ x / support  # (n, d, d)
        samples.append(torch.einsum("ij,njk,kl,nli->n", b_t, s_hat, a_t, s_hat))
    return Estimate.from_samples(torch.cat(samples))


def estimate_isotropic_trace_moment(dim: int, support: int, m: int, n_draws: int = 50_000,
                                    seed: int = 0) -> Estimate:
    """Twin of theory.wishart_moments.isotropic_trace_moment: E tr(Ŝ^m), Σ = I."""
    gen = make_generator(seed)
    samples = []
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        x = torch.randn(n, support, dim, generator=gen, dtype=torch.float64)  # (n, K, d)
        s_hat = x.transpose(1, 2) @ x / support  # (n, d, d)
        samples.append(torch.linalg.matrix_power(s_hat, m).diagonal(dim1=1, dim2=2).sum(-1))
    return Estimate.from_samples(torch.cat(samples))
