"""Twins of theory.wishart_moments: sample second moments Ŝ = XᵀX/K drawn literally, and Wick pairings.

Rows of X are x ~ N(0, Σ) (a Cholesky factor times standard normals), K rows per draw,
float64; the expectation is an average over independent draws with its standard error.
``wick_trace_moment`` enumerates the (2m−1)!! Wick pairings of tr((XᵀX)^m) literally: an
independent derivation of what the theory gets from Deitmar's recursion (m ≤ 7).
"""
from __future__ import annotations

import numpy as np
import sympy as sp
import torch

from simulations.statistics import Estimate
from simulations.tasks import make_generator
from theory.ground.errors import require_int
from theory.wishart_moments import K_sym, d_sym

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


def wick_trace_moment(m: int) -> sp.Expr:
    """E tr((XᵀX)^m), X (K, d) iid N(0, 1), as a polynomial in d and K by enumerating Wick pairings.

    tr((XᵀX)^m) = Σ Π_t X[a_t, b_t] X[a_t, b_{t+1}]  (indices cyclic in t); a pairing of the
    2m factors forces equal row indices and equal column indices within each pair, and
    contributes K^{#row classes} d^{#column classes}. (2m−1)!! pairings: m ≤ 7 (135,135).
    """
    m = require_int("m", m, 1, 7)
    rows = [t for t in range(m) for _ in (0, 1)]  # factor 2t is X[a_t, b_t], factor 2t+1 is X[a_t, b_{t+1}]
    cols = [c for t in range(m) for c in (t, (t + 1) % m)]
    counts: dict[tuple[int, int], int] = {}
    for pairing in _pairings(tuple(range(2 * m))):
        row_parent, col_parent = list(range(m)), list(range(m))
        for p, q in pairing:
            row_parent[_find(row_parent, rows[p])] = _find(row_parent, rows[q])
            col_parent[_find(col_parent, cols[p])] = _find(col_parent, cols[q])
        key = (len({_find(row_parent, i) for i in range(m)}), len({_find(col_parent, i) for i in range(m)}))
        counts[key] = counts.get(key, 0) + 1
    return sp.expand(sum(c * K_sym ** a * d_sym ** b for (a, b), c in counts.items()))


def _pairings(items: tuple):
    """All perfect matchings of ``items`` (a tuple of even length), as lists of pairs."""
    if not items:
        yield []
        return
    first, rest = items[0], items[1:]
    for i, partner in enumerate(rest):
        for tail in _pairings(rest[:i] + rest[i + 1:]):
            yield [(first, partner)] + tail


def _find(parent: list, i: int) -> int:
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i
