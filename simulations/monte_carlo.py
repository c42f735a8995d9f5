"""Monte-Carlo twins of the closed forms in theory/: same parameters, literal computation.

Each estimator samples tasks, runs the real functional MAML inner loop
(simulations.maml) on the support set, and measures the loss on fresh query points;
it returns an Estimate (mean, standard error) over independent tasks. None of them
evaluates the closed form it is compared with.
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


def _shallow_losses(family: LinearTaskFamily, theta, alpha: float, steps: int, n_tasks: int,
                    seed: int, precond=None) -> dict[str, torch.Tensor]:
    """Per-task pre- and post-adaptation query losses of the shallow model at θ, (n_tasks,) each."""
    model = shallow_linear(family.dim)
    params = {model.head_name: torch.as_tensor(np.asarray(theta, float)).reshape(1, family.dim)}
    t_apply, t_params = None, None
    if precond is not None:
        _, t_apply = matrix_preconditioner(model.head_name, family.dim)
        t_params = {"precond": torch.as_tensor(np.asarray(precond, float))}
    inner = InnerLoop(alpha=alpha, steps=steps)
    gen = make_generator(seed)
    parts = {"pre_loss": [], "post_loss": []}
    with torch.no_grad():
        for start in range(0, n_tasks, CHUNK):
            batch = sample_regression_tasks(family, min(CHUNK, n_tasks - start), gen)
            out = task_losses(model, params, batch, inner, t_apply, t_params)
            for key, values in parts.items():
                values.append(out[key])
    return {k: torch.cat(v) for k, v in parts.items()}


def estimate_pre_adaptation_loss(family: LinearTaskFamily, theta, n_tasks: int = 100_000,
                                 seed: int = 0) -> Estimate:
    """Twin of theory.shallow_maml.pre_adaptation_loss: mean query loss of θ on fresh tasks."""
    return Estimate.from_samples(_shallow_losses(family, theta, 0.0, 0, n_tasks, seed)["pre_loss"])


def estimate_post_adaptation_loss(family: LinearTaskFamily, theta, alpha: float, steps: int = 1,
                                  n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.shallow_maml.post_adaptation_loss: query loss after k literal inner steps."""
    return Estimate.from_samples(_shallow_losses(family, theta, alpha, steps, n_tasks, seed)["post_loss"])


def estimate_preconditioned_post_loss(family: LinearTaskFamily, theta, precond, alpha: float = 1.0,
                                      n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.preconditioned_maml.preconditioned_post_adaptation_loss: one step θ − αP∇L."""
    losses = _shallow_losses(family, theta, alpha, 1, n_tasks, seed, precond=precond)
    return Estimate.from_samples(losses["post_loss"])


def estimate_sample_moment_sandwich(sigma: np.ndarray, a: np.ndarray, support: int, probe: np.ndarray,
                                    n_draws: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.wishart_moments.sample_moment_sandwich, contracted: E tr(B Ŝ A Ŝ) for a probe B."""
    gen = make_generator(seed)
    root = torch.as_tensor(np.linalg.cholesky(sigma))
    a_t, b_t = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(probe, dtype=torch.float64)
    samples = []
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        x = torch.randn(n, support, sigma.shape[0], generator=gen, dtype=torch.float64) @ root.T  # (n, K, d)
        s_hat = x.transpose(1, 2) @ x / support  # (n, d, d)
        samples.append(torch.einsum("ij,njk,kl,nli->n", b_t, s_hat, a_t, s_hat))
    return Estimate.from_samples(torch.cat(samples))


def estimate_isotropic_trace_moment(dim: int, support: int, m: int, n_draws: int = 50_000,
                                    seed: int = 0) -> Estimate:
    """Twin of theory.wishart_moments.isotropic_trace_moment: E tr(Ŝ^m), Σ = I."""
    gen = make_generator(seed)
    samples = []
    for start in range(0, n_draws, CHUNK):
        n = min(CHUNK, n_draws - start)
        x = torch.randn(n, support, dim, generator=gen, dtype=torch.float64)  # (n, K, d)
        s_hat = x.transpose(1, 2) @ x / support  # (n, d, d)
        samples.append(torch.linalg.matrix_power(s_hat, m).diagonal(dim1=1, dim2=2).sum(-1))
    return Estimate.from_samples(torch.cat(samples))
