"""Batched MAML for linear chains without forming any task's adapted weights (the fast path).

Over K support points a bias-free layer's gradient has rank ≤ K: ∇W_l L = D_lᵀ H_l with
D_l = ∂L/∂Z_l (K, out) at the layer's output and H_l its input (K, in). After j inner steps
W'_l = W_l − α Σ_i D_l⁽ⁱ⁾ᵀ H_l⁽ⁱ⁾, so the adapted layer applied to A (N, in) is
A W_lᵀ − α Σ_i (A H_l⁽ⁱ⁾ᵀ) D_l⁽ⁱ⁾: O(N K (in + out)) per task instead of O(in · out).
The objective and its meta-gradient equal simulations.maml.meta_loss (tests: to 1e-10);
``meta_train`` uses this path for LinearChain models without a gradient transform.
"""
from __future__ import annotations

import torch

from simulations.maml import LOSSES, InnerLoop, Params, adapted_names
from simulations.models import LinearChain
from simulations.tasks import TaskBatch


def low_rank_meta_loss(model: LinearChain, params: Params, batch: TaskBatch,
                       inner: InnerLoop) -> torch.Tensor:
    """mean_τ L_query,τ(θ'_τ) for a LinearChain, batched over tasks (module doc)."""
    if not isinstance(model, LinearChain):
        raise TypeError(f"low_rank_meta_loss needs a LinearChain, got {type(model).__name__}")
    names = [n for n, _ in model.named_parameters()]
    adapted = [i for i, n in enumerate(names) if n in adapted_names(model, inner)]
    weights = [params[n] for n in names]
    factors: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in names]
    loss_fn, squeeze = LOSSES[inner.loss], model.widths[-1] == 1
    for _ in range(inner.steps):
        inputs, out = _chain_forward(weights, factors, batch.x_support, inner.alpha)  # (T, K, ·)
        pred = out.squeeze(-1) if squeeze else out
        loss = loss_fn(pred, batch.y_support) * batch.n_tasks  # Σ_τ L_τ: its Z_l,τ-gradient is ∂L_τ/∂Z_l,τ
        outputs = inputs[1:] + [out]
        ds = torch.autograd.grad(loss, [outputs[i] for i in adapted], create_graph=not inner.first_order)
        for i, d in zip(adapted, ds):  # d (T, K, out_l)
            factors[i].append((d, inputs[i] if not inner.first_order else inputs[i].detach()))
    _, out = _chain_forward(weights, factors, batch.x_query, inner.alpha)  # (T, Q, out)
    return loss_fn(out.squeeze(-1) if squeeze else out, batch.y_query)


def _chain_forward(weights, factors, x: torch.Tensor, alpha: float):
    """Each layer's input H_l and the chain's output, for fast weights W_l − α Σ Dᵀ H; x (T, N, d)."""
    inputs = []
    for w, layer_factors in zip(weights, factors):
        inputs.append(x)
        z = x @ w.T  # (T, N, out)
        for d, h in layer_factors:
            z = z - alpha * (x @ h.transpose(1, 2)) @ d  # (T, N, K) @ (T, K, out)
        x = z
    return inputs, x
