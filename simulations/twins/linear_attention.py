"""Twins of theory.linear_attention: a literal linear self-attention layer on in-context regression prompts.

A prompt is Z = [[x_1 … x_N x_q], [y_1 … y_N 0]] ∈ R^{(d+1)×(N+1)}; one layer (merged key–query matrix W_KQ and
value–projection W_PV, both (d+1)×(d+1), as in Ahn et al. 2023 and Zhang, Frei & Bartlett 2024) maps
    f(Z) = Z + W_PV Z M (Zᵀ W_KQ Z)/N,   M = diag(1, …, 1, 0) (the query is not a key),
and predicts ŷ = f(Z)[d, N] (the query's label slot). Nothing here forms the closed-form loss: losses are the
Monte-Carlo mean of ½(ŷ − y)² on fresh prompts (several queries per context: each query is its own prompt with
the same context). The stacked construction of von Oswald et al. (2023) updates every token's label slot by
−z_jᵀ W_KQ (1/N) Σ_i r_i z_i per layer, the query's slot holding −ŷ.
"""
from __future__ import annotations

import numpy as np
import torch

from simulations.statistics import Estimate
from simulations.tasks import make_generator, sample_regression_tasks
from theory.linear_attention import at_context
from theory.task_family import LinearTaskFamily

CHUNK = 20_000  # contexts per batch when estimating


def predict(w_kq: torch.Tensor, w_pv: torch.Tensor, x: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor):
    """ŷ (B, Q) of one attention layer for contexts x (B, N, d), y (B, N) and queries x_q (B, Q, d): each query
    its own prompt with the same context (module doc)."""
    n = x.shape[1]
    z = torch.cat([x, y[..., None]], dim=-1)  # (B, N, d+1) context tokens
    zq = torch.cat([x_q, torch.zeros_like(x_q[..., :1])], dim=-1)  # (B, Q, d+1) queries, label slot 0
    values = z @ w_pv.T  # (B, N, d+1): W_PV z_i
    scores = z @ w_kq @ zq.transpose(1, 2)  # (B, N, Q): z_iᵀ W_KQ z_q
    return (values[..., -1:].transpose(1, 2) @ scores)[:, 0, :] / n  # (B, Q): the label row of the update


def sparse_weights(gamma, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(W_KQ, W_PV) whose layer predicts ŷ = x_qᵀΓ(1/N)Σy_i x_i: the x-block of W_KQ is Γᵀ, W_PV[d, d] = 1."""
    w_kq = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
    w_kq[:dim, :dim] = torch.as_tensor(np.asarray(gamma, float)).T
    w_pv = torch.zeros(dim + 1, dim + 1, dtype=torch.float64)
    w_pv[dim, dim] = 1.0
    return w_kq, w_pv


def estimate_icl_loss(family: LinearTaskFamily, w_kq, w_pv, context: int | None = None, n_tasks: int = 50_000,
                      seed: int = 0) -> Estimate:
    """½(ŷ − y)² on fresh prompts of ``context`` pairs (the family's N when None), mean over tasks (each the mean
    over the family's query count of queries)."""
    fam, gen, parts = at_context(family, context), make_generator(seed), []
    with torch.no_grad():
        for start in range(0, n_tasks, CHUNK):
            batch = sample_regression_tasks(fam, min(CHUNK, n_tasks - start), gen)
            pred = predict(w_kq, w_pv, batch.x_support, batch.y_support, batch.x_query)
            parts.append(0.5 * ((pred - batch.y_query) ** 2).mean(-1))
    return Estimate.from_samples(torch.cat(parts))


def train_attention(family: LinearTaskFamily, iterations: int, batch: int = 256, lr: float = 0.01,
                    init: float = 0.1, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Train every entry of (W_KQ, W_PV) with Adam (cosine decay) on fresh prompts of the family's N pairs, from
    the sparse start of Zhang, Frei & Bartlett (x-block of W_KQ = init·I, W_PV[d, d] = init, the rest 0)."""
    d = family.dim
    gen = make_generator(seed)
    w_kq, w_pv = sparse_weights(init * np.eye(d), d)
    w_pv[d, d] = init
    w_kq.requires_grad_(True)
    w_pv.requires_grad_(True)
    opt = torch.optim.Adam([w_kq, w_pv], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(iterations, 1))
    history = []
    for _ in range(iterations):
        tasks = sample_regression_tasks(family, batch, gen)
        loss = 0.5 * ((predict(w_kq, w_pv, tasks.x_support, tasks.y_support, tasks.x_query) - tasks.y_query) ** 2
                      ).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        history.append(loss.item())
    return w_kq.detach(), w_pv.detach(), history


def effective_gamma(w_kq: torch.Tensor, w_pv: torch.Tensor) -> np.ndarray:
    """Γ with ŷ = x_qᵀΓ(1/N)Σy_i x_i read off a layer's weights: W_PV[d, d]·(x-block of W_KQ)ᵀ (the other entries
    gradient flow keeps at 0 from the sparse start are ignored here; the loss twin uses the full layer)."""
    d = w_kq.shape[0] - 1
    return (w_pv[d, d] * w_kq[:d, :d].T).numpy()


def stacked_predict(gammas, x: torch.Tensor, y: torch.Tensor, x_q: torch.Tensor) -> torch.Tensor:
    """ŷ (B, Q) of the stacked construction: layer ℓ moves each context token's residual slot r_j and each query's
    slot by −x_jᵀΓ_ℓ(1/N)Σ_i r_i x_i (von Oswald et al. 2023); the query slot starts at 0 and holds −ŷ."""
    n = x.shape[1]
    r, q = y.clone(), torch.zeros(x_q.shape[:2], dtype=x.dtype)
    for gamma in gammas:
        g = torch.as_tensor(np.asarray(gamma, float))
        signal = (r[..., None] * x).sum(1) / n  # (B, d): (1/N) Σ r_i x_i
        r = r - (x @ g @ signal[..., None])[..., 0]
        q = q - (x_q @ g @ signal[..., None])[..., 0]
    return -q


def estimate_stacked_loss(family: LinearTaskFamily, gammas, n_tasks: int = 50_000, seed: int = 0) -> Estimate:
    """½(ŷ − y)² of the stacked construction on fresh prompts of the family's N pairs."""
    gen, parts = make_generator(seed), []
    for start in range(0, n_tasks, CHUNK):
        batch = sample_regression_tasks(family, min(CHUNK, n_tasks - start), gen)
        pred = stacked_predict(gammas, batch.x_support, batch.y_support, batch.x_query)
        parts.append(0.5 * ((pred - batch.y_query) ** 2).mean(-1))
    return Estimate.from_samples(torch.cat(parts))
