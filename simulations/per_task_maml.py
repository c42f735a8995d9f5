"""MAML and ANIL the way most libraries write it: one task at a time on a cloned module.

The baseline for the batched functional path (simulations.maml). For each task τ of the
meta-batch the model is cloned (learn2learn ``clone_module`` style: the clone's parameters
are non-leaf copies of the originals, so gradients flow back to them), then adapted in place

  θ'_τ ← θ'_τ − α ∇ L_support,τ(θ'_τ)     (k times; create_graph unless first order)

by writing the fast weights into the clone, and its query loss L_query,τ(θ'_τ) is added up:

  meta-loss = mean_τ L_query,τ(θ'_τ)

Same objective as simulations.maml.meta_loss; ``.backward()`` fills the original model's ``.grad``.
"""
from __future__ import annotations

import torch
from torch import nn

from simulations.maml import LOSSES, GradientTransform, InnerLoop, adapted_names
from simulations.tasks import TaskBatch


def clone_module(module: nn.Module) -> nn.Module:
    """A copy of ``module`` whose parameters are differentiable functions (clones) of the originals.

    Only the module tree and its parameter dictionaries are copied; tensors are cloned with
    autograd, so backpropagating through the clone reaches the original parameters.
    """
    clone = module.__new__(type(module))
    clone.__dict__ = module.__dict__.copy()
    clone._parameters = {name: None if p is None else p.clone() for name, p in module._parameters.items()}
    clone._buffers = module._buffers.copy()
    clone._modules = {name: None if m is None else clone_module(m) for name, m in module._modules.items()}
    return clone


def _owner(module: nn.Module, name: str) -> tuple[nn.Module, str]:
    """The submodule holding parameter ``name`` ("layers.2.weight") and the parameter's own name."""
    *path, leaf = name.split(".")
    for part in path:
        module = module._modules[part]
    return module, leaf


def _inner_step(learner: nn.Module, names: list[str], x_s: torch.Tensor, y_s: torch.Tensor,
                inner: InnerLoop, transform: GradientTransform | None = None) -> None:
    """One in-place step θ' ← θ' − α U(∇θ' L_support(θ')) on the adapted parameters of ``learner``
    (U = identity, or a gradient transform such as KFO applied to this task's gradients)."""
    owners = [_owner(learner, n) for n in names]
    fast = [mod._parameters[leaf] for mod, leaf in owners]
    loss = LOSSES[inner.loss](learner(x_s), y_s)  # scalar, support loss of this task
    grads = torch.autograd.grad(loss, fast, create_graph=not inner.first_order)
    if transform is not None:
        moved = transform(dict(zip(names, grads)))
        grads = [moved[n] for n in names]
    for (mod, leaf), p, g in zip(owners, fast, grads):
        mod._parameters[leaf] = p - inner.alpha * g  # non-leaf fast weight, still a function of θ


def per_task_meta_loss(model: nn.Module, batch: TaskBatch, inner: InnerLoop,
                       transform: GradientTransform | None = None) -> torch.Tensor:
    """The MAML objective mean_τ L_query,τ(θ'_τ), one task at a time on a cloned module (a scalar).

    MAML (inner.adapt = "all") adapts every parameter, ANIL ("head") only the head
    (``adapted_names``: ``model.head_names`` or ``model.head_name``);
    first order (FOMAML) detaches the inner gradients (no create_graph), so ∂θ'/∂θ = I.
    """
    names = adapted_names(model, inner)
    loss_fn = LOSSES[inner.loss]
    total = 0.0
    for t in range(batch.n_tasks):
        learner = clone_module(model)
        for _ in range(inner.steps):
            _inner_step(learner, names, batch.x_support[t], batch.y_support[t], inner, transform)  # (K, d), (K,)
        total = total + loss_fn(learner(batch.x_query[t]), batch.y_query[t])  # (Q, d), (Q,)
    return total / batch.n_tasks
