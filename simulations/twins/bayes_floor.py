"""Monte-Carlo twin of theory.bayes_floor: the posterior-mean estimator applied to sampled tasks.

Each task (w_τ, support and query sets) comes from simulations.tasks.sample_regression_tasks; the
estimator sees only the support set and the prior (μ, Σw, s²) and predicts with

  w_post = μ + Σw Xᵀ (X Σw Xᵀ + s² I)⁻¹ (y − X μ)      (s² > 0, a K × K solve in d dimensions),
  w_post = μ + F (X F)⁺ (y − X μ)                      (s² = 0: the limit s² → 0, Σw = F Fᵀ);

the query loss ½ mean (w_postᵀx − y)² over the Q fresh points includes the label noise. Nothing here
evaluates the closed form, the Wishart reduction or the quadrature of theory.bayes_floor.
"""
from __future__ import annotations

import torch

from simulations.statistics import Estimate
from simulations.tasks import make_generator, sample_regression_tasks
from theory.task_family import LinearTaskFamily

CHUNK = 20_000  # tasks per batch: bounds memory at about CHUNK·(K+Q)·d floats


def posterior_mean(family: LinearTaskFamily, x_support: torch.Tensor, y_support: torch.Tensor) -> torch.Tensor:
    """w_post given each task's support set (module doc), (T, d) float64 from x (T, K, d) and y (T, K)."""
    mu = torch.as_tensor(family.task_mean)  # (d,)
    residual = y_support - x_support @ mu  # y − Xμ, (T, K)
    if family.noise_var > 0:
        sigma_w = torch.tensor(family.task_cov)  # (d, d), a copy: task_cov is read-only
        gram = x_support @ sigma_w @ x_support.transpose(1, 2)  # X Σw Xᵀ, (T, K, K)
        eye = torch.eye(family.support, dtype=gram.dtype)
        coef = torch.linalg.solve(gram + family.noise_var * eye, residual.unsqueeze(-1))  # (T, K, 1)
        return mu + (sigma_w @ x_support.transpose(1, 2) @ coef).squeeze(-1)  # (T, d)
    f = torch.as_tensor(family.task_factor)  # (d, r)
    z_post = torch.linalg.pinv(x_support @ f) @ residual.unsqueeze(-1)  # (XF)⁺(y − Xμ), (T, r, 1)
    return mu + (f @ z_post).squeeze(-1)  # (T, d)


def bayes_query_losses(family: LinearTaskFamily, n_tasks: int, seed: int) -> torch.Tensor:
    """Per-task query loss ½ mean (w_postᵀx − y)² of the posterior-mean estimator, (n_tasks,)."""
    gen = make_generator(seed)
    losses = []
    for start in range(0, n_tasks, CHUNK):
        batch = sample_regression_tasks(family, min(CHUNK, n_tasks - start), gen)  # float64
        w_post = posterior_mean(family, batch.x_support, batch.y_support)  # (T, d)
        error = torch.einsum("tqd,td->tq", batch.x_query, w_post) - batch.y_query  # (T, Q)
        losses.append(0.5 * error.pow(2).mean(dim=1))
    return torch.cat(losses)


def estimate_bayes_optimal_loss(family: LinearTaskFamily, n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.bayes_floor.bayes_optimal_loss: mean query loss of the posterior mean on sampled tasks."""
    return Estimate.from_samples(bayes_query_losses(family, n_tasks, seed))
