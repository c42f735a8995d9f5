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
    x_s, x_q = batch.x_support, batch.x_query  # (T, K, d), (T, Q, d)
    k, q = x_s.shape[1], x_q.shape[1]

    def s_sup(v: torch.Tensor) -> torch.Tensor:  # Ŝ_s v = X_sᵀ(X_s v)/K without forming Ŝ_s: O(TKd)
        return torch.einsum("tkd,tk->td", x_s, torch.einsum("tkd,td->tk", x_s, v)) / k  # (T, d)

    resid_s = x_s @ theta - batch.y_support  # (T, K)
    g_s = torch.einsum("tkd,tk->td", x_s, resid_s) / k  # (T, d), = Ŝ_s θ − b_s
    adapted = theta - alpha * g_s @ p.T  # (T, d)
    resid = torch.einsum("tqd,td->tq", x_q, adapted) - batch.y_query  # (T, Q)
    g_q = torch.einsum("tqd,tq->td", x_q, resid) / q  # (T, d)
    n = batch.n_tasks
    grad_theta = (g_q - alpha * s_sup(g_q @ p)).mean(0)  # (d,), (I − αŜ_sPᵀ) g_q
    grad_p = -alpha * torch.einsum("ti,tj->ij", g_q, g_s) / n  # (d, d)
    grad_alpha = -torch.einsum("ti,ij,tj->", g_q, p, g_s) / n
    loss = 0.5 * (resid**2).mean(1).mean()
    return MetaGradient(loss, grad_theta, grad_p, grad_alpha)
