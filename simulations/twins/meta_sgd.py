"""Monte-Carlo twins of theory.meta_sgd: one literal inner step θ − α diag(p) ∇L, and meta-trained Meta-SGD.

The step runs through the real functional inner loop (simulations.maml) of the shallow model f(x) = θᵀx; the
per-parameter step sizes are a gradient transform (simulations.transforms.diagonal_preconditioner) whose p the
engine meta-trains beside θ. Nothing here forms A, b or the closed-form loss.
"""
from __future__ import annotations

import numpy as np

from simulations.maml import InnerLoop
from simulations.models import LinearChain, shallow_linear
from simulations.statistics import Estimate
from simulations.tasks import sample_regression_tasks
from simulations.training import MetaTrainResult, evaluate, meta_train
from simulations.transforms import diagonal_preconditioner
from simulations.twins.shallow_maml import CHUNK, shallow_query_losses
from theory.task_family import LinearTaskFamily


def estimate_meta_sgd_post_adaptation_loss(family: LinearTaskFamily, p, alpha: float, theta=None,
                                           n_tasks: int = 100_000, seed: int = 0) -> Estimate:
    """Twin of theory.meta_sgd.meta_sgd_post_adaptation_loss: the query loss after θ − α diag(p) ∇L (θ = μ)."""
    theta = family.task_mean if theta is None else theta
    losses = shallow_query_losses(family, theta, alpha, 1, n_tasks, seed, precond=np.diag(np.asarray(p, float)))
    return Estimate.from_samples(losses["post_loss"])


def meta_train_meta_sgd(family: LinearTaskFamily, alpha: float, iterations: int, meta_batch: int = 128,
                        meta_lr: float = 0.01, seed: int = 0) -> tuple[LinearChain, MetaTrainResult]:
    """Meta-train θ and the per-parameter step sizes p (from θ = 0, p = 1) with Adam and cosine decay."""
    model = shallow_linear(family.dim)
    result = meta_train(model, lambda n, gen: sample_regression_tasks(family, n, gen), InnerLoop(alpha),
                        iterations, meta_batch=meta_batch, meta_lr=meta_lr, seed=seed,
                        transform=diagonal_preconditioner(model.head_name, family.dim), lr_decay=True)
    return model, result


def estimate_meta_trained_meta_sgd_loss(family: LinearTaskFamily, alpha: float, iterations: int, n_tasks: int,
                                        seed: int = 0, meta_batch: int = 128,
                                        meta_lr: float = 0.01) -> tuple[Estimate, np.ndarray]:
    """Twin of theory.meta_sgd.meta_sgd_best_post_loss: meta-trained Meta-SGD's post-adaptation loss on fresh
    tasks (its learned transform in the literal inner loop), and the learned step sizes p (d,)."""
    model, result = meta_train_meta_sgd(family, alpha, iterations, meta_batch, meta_lr, seed)
    est = evaluate(model, result.params, lambda n, gen: sample_regression_tasks(family, n, gen), InnerLoop(alpha),
                   n_tasks, seed=seed + 1, transform=result.transform, chunk=CHUNK)["post_loss"]
    return est, result.transform.params["step_sizes"].numpy().copy()
