"""Closed-form MAML meta-gradients for the shallow and preconditioned models (no autograd).

For one task with support moments Ŝ_s = X_sᵀX_s/K, b_s = X_sᵀy_s/K (query: Ŝ_q, b_q):
  g_s = Ŝ_s θ − b_s,   θ' = θ − αP g_s,   g_q = Ŝ_q θ' − b_q,
  ∂L_q(θ')/∂θ = (I − αŜ_s Pᵀ) g_q,   ∂/∂P = −α g_q g_sᵀ,   ∂/∂α = −g_qᵀ P g_s.
Batched over tasks with einsum; the meta-gradient is the mean over the meta-batch.
These are for fast sweeps; tests hold them against autograd through simulations.maml.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from simulations.tasks import TaskBatch


@dataclass(frozen=True)
class MetaGradient:
    """The MAML meta-loss on a meta-batch and its gradients."""

    loss: torch.Tensor  # scalar
    theta: torch.Tensor  # (d,)
    precond: torch.Tensor  # (d, d)
    alpha: torch.Tensor  # scalar


def shallow_meta_gradient(theta: torch.Tensor, batch: TaskBatch, alpha: float,
                          precond: torch.Tensor | None = None) -> MetaGradient:
    """Meta-loss mean_τ ½ mean_q (θ'_τᵀx − y)² and its gradients in θ, P and α (module doc)."""
    d = theta.shape[-1]
    p = torch.eye(d, dtype=theta.dtype) if precond is None else precond
    k, q = batch.x_support.shape[1], batch.x_query.shape[1]
    s_sup = batch.x_support.transpose(1, 2) @ batch.x_support / k  # (T, d, d)
    b_sup = torch.einsum("tkd,tk->td", batch.x_support, batch.y_support) / k  # (T, d)
    g_s = torch.einsum("tij,j->ti", s_sup, theta) - b_sup  # (T, d)
    adapted = theta - alpha * g_s @ p.T  # (T, d)
    resid = torch.einsum("tqd,td->tq", batch.x_query, adapted) - batch.y_query  # (T, Q)
    g_q = torch.einsum("tqd,tq->td", batch.x_query, resid) / q  # (T, d)
    n = batch.n_tasks
    grad_theta = (g_q - alpha * torch.einsum("tij,kj,tk->ti", s_sup, p, g_q)).mean(0)  # (d,)
    grad_p = -alpha * torch.einsum("ti,tj->ij", g_q, g_s) / n  # (d, d)
    grad_alpha = -torch.einsum("ti,ij,tj->", g_q, p, g_s) / n
    loss = 0.5 * (resid**2).mean(1).mean()
    return MetaGradient(loss, grad_theta, grad_p, grad_alpha)
