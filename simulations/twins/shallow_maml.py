"""Monte-Carlo twins of theory.shallow_maml: same parameters (a LinearTaskFamily), literal computation.

Each estimator samples tasks, runs the real functional MAML inner loop (simulations.maml) on
the support set and measures the loss on fresh query points; it returns an Estimate (mean,
standard error) over independent tasks. None of them evaluates the closed form it is compared with.
"""
from __future__ import annotations

import numpy as np
import torch

from simulations.maml import InnerLoop, task_losses
from simulations.models import shallow_linear
from simulations.statistics import Estimate
from simulations.tasks import make_generator, sample_regression_tasks
from simulations.transforms import matrix_preconditioner
from theory.task_family import LinearTaskFamily

CHUNK = 20_000  # tasks per vmapped call: bounds memory at about CHUNK·(K+Q)·d floats


def shallow_query_losses(family: LinearTaskFamily, theta, alpha: float, steps: int, n_tasks: int,
                    seed: int, precond=None) -> dict[str, torch.Tensor]:
    """Per-task pre- and post-adaptation query losses of the shallow model at θ, (n_tasks,) each.

    k literal inner steps θ ← θ − αP∇L_support(θ) (P = I unless ``precond`` is given), then the
    query loss ½ mean (θ'ᵀx − y)² on Q fresh points; tasks are drawn in chunks of CHUNK.
    """
    model = shallow_linear(family.dim)
    params = {model.head_name: torch.as_tensor(np.asarray(theta, float)).reshape(1, family.dim)}
    transform = None
    if precond is not None:
        transform = matrix_preconditioner(model.head_name, family.dim).with_params(
            {"precond": torch.as_tensor(np.asarray(precond, float))})
    inner = InnerLoop(alpha=alpha, steps=steps)
    gen = make_generator(seed)
    parts = {"pre_loss": [], "post_loss": []}
    with torch.no_grad():
        for start in range(0, n_tasks, CHUNK):
            batch = sample_regression_tasks(family, min(CHUNK, n_tasks - start), gen)
            out = task_losses(model, params, batch, inner, transform)
            for key, values in parts.items():
                values.append(out[key])
    return {k: torch.cat(v) for k, v in parts.items()}


def estimate_pre_adaptation_loss(family: LinearTaskFamily, theta, n_tasks: int = 100_000,
                                 seed: int = 0) -> Estimate:
    """Twin of theory.shallow_maml.pre_adaptation_loss: mean query loss of θ on fresh tasks."""
    return Estimate.from_samples(shallow_query_losses(family, theta, 0.0, 0, n_tasks, seed)["pre_loss"])


def estimate_post_adaptation_loss(family: LinearTaskFamily, theta, alpha: float, steps: int = 1,
                                  n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.shallow_maml.post_adaptation_loss: query loss after k literal inner steps."""
    return Estimate.from_samples(shallow_query_losses(family, theta, alpha, steps, n_tasks, seed)["post_loss"])


def estimate_best_post_adaptation_loss(family: LinearTaskFamily, alpha: float, steps: int = 1,
                                       n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.shallow_maml.best_post_adaptation_loss: the post-adaptation loss at θ = μ (the
    family's task mean, as the sampler draws it) and the step ``alpha`` the caller claims is best."""
    return estimate_post_adaptation_loss(family, family.task_mean, alpha, steps, n_tasks, seed)
