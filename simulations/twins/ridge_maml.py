"""Monte-Carlo twins of theory.ridge_maml: the literal iMAML inner problem, solved exactly, and iMAML meta-trained.

Every task is drawn whole (simulations.tasks: w_τ, support and query inputs, label noise); the inner problem
φ = argmin (1/2K)‖Xφ − y‖² + ½(φ − θ)ᵀΛ(φ − θ) is solved by torch.linalg.solve on the normal equations
(Ŝ + Λ)φ = Xᵀy/K + Λθ, and the query loss ½ mean (x_qᵀφ − y_q)² is measured on fresh points. Autograd through
the solve is the exact implicit meta-gradient of iMAML (the ridge problem is solved exactly, so no conjugate-
gradient approximation enters). Nothing here forms the expectation over X or the Bayes floor.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from simulations.statistics import Estimate
from simulations.tasks import TaskBatch, make_generator, sample_regression_tasks
from simulations.training import Training
from theory.ground.errors import DivergenceError, ParameterError
from theory.ridge_maml import penalty_matrix
from theory.task_family import LinearTaskFamily

CHUNK = 20_000  # tasks per batch: bounds memory at about CHUNK·(K + Q + d)·d floats


def ridge_adapt(theta: torch.Tensor, penalty: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """φ = (Ŝ + Λ)⁻¹(Xᵀy/K + Λθ) per task, (T, d): the exact solution of the inner ridge problem."""
    x, y = batch.x_support, batch.y_support  # (T, K, d), (T, K)
    k = x.shape[1]
    gram = x.transpose(1, 2) @ x / k + penalty  # Ŝ + Λ, (T, d, d)
    rhs = torch.einsum("tkd,tk->td", x, y) / k + penalty @ theta  # Xᵀy/K + Λθ, (T, d)
    return torch.linalg.solve(gram, rhs)


def query_losses(phi: torch.Tensor, batch: TaskBatch) -> torch.Tensor:
    """½ mean over each task's Q query points of (x_qᵀφ − y_q)², (T,)."""
    residual = torch.einsum("tqd,td->tq", batch.x_query, phi) - batch.y_query  # (T, Q)
    return 0.5 * (residual**2).mean(1)


def estimate_ridge_post_adaptation_loss(family: LinearTaskFamily, theta, lam, n_tasks: int = 100_000,
                                        seed: int = 0) -> Estimate:
    """Twin of theory.ridge_maml.ridge_post_adaptation_loss: whole tasks drawn, the ridge problem solved."""
    theta_t = torch.as_tensor(np.asarray(family.task_mean if theta is None else theta, float))  # (d,)
    penalty = torch.as_tensor(penalty_matrix(family, lam))  # (d, d)
    gen = make_generator(seed)
    parts = []
    for start in range(0, n_tasks, CHUNK):
        batch = sample_regression_tasks(family, min(CHUNK, n_tasks - start), gen)
        parts.append(query_losses(ridge_adapt(theta_t, penalty, batch), batch))
    return Estimate.from_samples(torch.cat(parts))


@dataclass
class ImamlResult:
    """Meta-learned θ (d,) and Λ's diagonal λ (d,) (all equal for a scalar λ), and the meta-loss history."""

    theta: np.ndarray
    lam: np.ndarray
    history: list[float]


def meta_train_imaml(family: LinearTaskFamily, iterations: int, meta_batch: int = 128, meta_lr: float = 0.02,
                     seed: int = 0, diagonal: bool = False, log_lam0: float = 0.0) -> ImamlResult:
    """iMAML: Adam (cosine decay, the engine's Training) on θ (from 0) and log λ (from ``log_lam0``; one scalar,
    or one per coordinate when ``diagonal``), through the exact ridge solve."""
    training = Training(iterations, meta_batch, meta_lr, lr_decay=True)
    theta = torch.zeros(family.dim, dtype=torch.float64, requires_grad=True)
    log_lam = torch.full((family.dim if diagonal else 1,), float(log_lam0), dtype=torch.float64, requires_grad=True)
    opt, schedule = training.start({"theta": theta}, {"log_lam": log_lam})
    gen, history = make_generator(seed), []
    for it in range(iterations):
        batch = sample_regression_tasks(family, meta_batch, gen)
        penalty = torch.diag(torch.exp(log_lam).expand(family.dim))  # Λ, (d, d)
        loss = query_losses(ridge_adapt(theta, penalty, batch), batch).mean()
        if not torch.isfinite(loss):
            raise DivergenceError(it, loss.item())
        opt.zero_grad()
        loss.backward()
        opt.step()
        schedule.step()
        history.append(loss.item())
    lam = torch.exp(log_lam.detach()).expand(family.dim).numpy().copy()
    return ImamlResult(theta.detach().numpy().copy(), lam, history)


def estimate_meta_trained_imaml_loss(family: LinearTaskFamily, iterations: int, n_tasks: int, seed: int = 0,
                                     diagonal: bool = False, meta_lr: float = 0.02) -> tuple[Estimate, ImamlResult]:
    """The post-adaptation loss of meta-trained iMAML on fresh tasks (the literal twin above), and what it learned."""
    if family.infinite_support:
        raise ParameterError("family", "K = ∞", "finite K (tasks are sampled)")
    result = meta_train_imaml(family, iterations, meta_lr=meta_lr, seed=seed, diagonal=diagonal)
    return estimate_ridge_post_adaptation_loss(family, result.theta, result.lam, n_tasks, seed + 1), result
