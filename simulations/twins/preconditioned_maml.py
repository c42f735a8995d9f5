"""Monte-Carlo twins of theory.preconditioned_maml: one literal preconditioned inner step θ − αP∇L.

The step runs through the real functional inner loop with a matrix gradient transform
(simulations.transforms.matrix_preconditioner); nothing here forms the closed-form M_P or P*.
"""
from __future__ import annotations

from simulations.statistics import Estimate
from simulations.twins.shallow_maml import shallow_query_losses
from theory.task_family import LinearTaskFamily


def estimate_preconditioned_post_adaptation_loss(family: LinearTaskFamily, theta, precond, alpha: float = 1.0,
                                                 n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.preconditioned_maml.preconditioned_post_adaptation_loss: query loss after θ − αP∇L."""
    losses = shallow_query_losses(family, theta, alpha, 1, n_tasks, seed, precond=precond)
    return Estimate.from_samples(losses["post_loss"])
