"""Monte-Carlo and autograd twins of theory.scalar_deep: the depth-2 scalar model f(x) = w₂w₁x.

The meta-objective twin runs one literal functional-MAML step on both layers of
simulations.models.deep_linear(1, 2, 1) (float64) on sampled tasks with x ~ N(0, 1),
w_τ ~ N(μ, σ²), y = w_τx, and averages the query loss; the update twin differentiates the
support loss with torch.autograd. Neither evaluates the sympy expressions they are checked against.
"""
from __future__ import annotations

import numpy as np
import torch

from simulations.maml import InnerLoop, task_losses
from simulations.models import deep_linear
from simulations.statistics import Estimate
from simulations.tasks import sample_regression_tasks
from theory.task_family import LinearTaskFamily


def scalar_family(support: int, mu: float, task_var: float, query: int = 10) -> LinearTaskFamily:
    """The d = 1 family of theory.scalar_deep: x ~ N(0, 1), w_τ ~ N(μ, σ²), noiseless labels."""
    return LinearTaskFamily(1, support, query, task_mean=np.array([mu]), task_factor=np.array([[task_var**0.5]]))


def estimate_depth2_scalar_meta_objective(w1: float, w2: float, alpha: float, support: int, mu: float,
                                          task_var: float, n_tasks: int = 200_000, seed: int = 0) -> Estimate:
    """Twin of theory.scalar_deep.depth2_scalar_meta_objective: query loss after one literal step on both layers."""
    model = deep_linear(1, 2, 1)
    params = {"layers.0.weight": torch.tensor([[w1]], dtype=torch.float64),
              "layers.1.weight": torch.tensor([[w2]], dtype=torch.float64)}
    batch = sample_regression_tasks(scalar_family(support, mu, task_var), n_tasks, seed)
    with torch.no_grad():
        out = task_losses(model, params, batch, InnerLoop(alpha), with_pre=False)
    return Estimate.from_samples(out["post_loss"])


def depth2_scalar_update_autograd(w1: float, w2: float, alpha: float, x, w_tau: float) -> tuple[float, float]:
    """Twin of theory.scalar_deep.depth2_scalar_update_symbolic: (w₁', w₂') after one autograd step on
    the support loss ½ mean (w₂w₁x − w_τx)² over the support inputs ``x`` (K,)."""
    x = torch.as_tensor(np.asarray(x, float))  # (K,)
    layers = [torch.tensor(float(v), dtype=torch.float64, requires_grad=True) for v in (w1, w2)]
    loss = 0.5 * ((layers[1] * layers[0] * x - w_tau * x) ** 2).mean()
    grads = torch.autograd.grad(loss, layers)
    return tuple((p - alpha * g).item() for p, g in zip(layers, grads))
