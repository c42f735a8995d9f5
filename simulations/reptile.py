"""Reptile (Nichol, Achiam & Schulman 2018): the outer direction θ − mean_τ θ_k,τ, batched over tasks.

Each task adapts with the same functional inner loop as MAML (simulations.maml.adapt: k steps of size α
on its support set); Reptile moves θ toward the adapted weights instead of differentiating a query loss:

  direction = θ − mean_τ θ_k,τ,      the usual Reptile step  θ ← θ + ε (mean_τ θ_k,τ − θ) = θ − ε · direction,

which is plain SGD with learning rate ε on this direction (meta_train(..., outer="reptile", optimizer="sgd");
with Adam the same direction is rescaled per coordinate). No gradient flows through the inner loop.
"""
from __future__ import annotations

import torch
from torch.func import functional_call, vmap

from simulations.maml import LOSSES, GradientTransform, InnerLoop, Params, adapt
from simulations.tasks import TaskBatch


def reptile_direction(model: torch.nn.Module, params: Params, batch: TaskBatch, inner: InnerLoop,
                      transform: GradientTransform | None = None) -> tuple[Params, torch.Tensor]:
    """(θ − mean_τ θ_k,τ per parameter, mean_τ L_query,τ(θ_k,τ)): Reptile's direction and the post-adaptation
    query loss of the same adapted weights (the MAML meta-loss, for the history). Nothing requires grad."""
    theta = {n: p.detach() for n, p in params.items()}
    loss_fn = LOSSES[inner.loss]

    def one_task(x_s, y_s, x_q, y_q):
        fast = adapt(model, theta, x_s, y_s, inner, transform)
        return fast, loss_fn(functional_call(model, fast, (x_q,)), y_q)

    with torch.no_grad():  # torch.func.grad inside adapt still takes the inner gradients
        fast, losses = vmap(one_task)(batch.x_support, batch.y_support, batch.x_query, batch.y_query)
    return {n: theta[n] - fast[n].mean(0) for n in theta}, losses.mean()
