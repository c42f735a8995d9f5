"""Twins of theory.dynamics: meta-training with plain SGD from a given start, measured on fresh tasks.

Plain SGD (no momentum, no Adam, no schedule) at a fixed meta learning rate η and a meta-batch of B fresh
tasks per step, from the same start as the closed form, for several seeds at once (simulations.training.
meta_train_runs). At each requested iteration n the run's parameters are kept and later evaluated on fresh
tasks with the literal inner loop (the Monte-Carlo mean of the post-adaptation query loss); the seeds' means
give the estimate at t = ηn. The expected SGD step is exactly the full-batch gradient step, so the mean path
follows theory.dynamics' discrete recursion; the SGD noise adds O(η/B), below the intervals used here.
Nothing here evaluates the closed forms it is compared with.
"""
from __future__ import annotations

import numpy as np
import torch

from simulations.maml import InnerLoop
from simulations.models import LinearChain, deep_linear, shallow_linear
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train_runs
from theory.ground.errors import DivergenceError, ParameterError
from theory.task_family import LinearTaskFamily


def shallow_start(family: LinearTaskFamily, theta0) -> LinearChain:
    """The shallow model f(x) = θᵀx with θ = θ₀."""
    model = shallow_linear(family.dim)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.as_tensor(np.asarray(theta0, float)).reshape(1, -1))
    return model


def two_layer_start(family: LinearTaskFamily, w1, w2) -> LinearChain:
    """The two-layer linear net x ↦ w2 W1 x with W1 (h, d) = w1 and the head (1, h) = w2."""
    w1 = np.asarray(w1, float)
    model = deep_linear(family.dim, 2, w1.shape[0])
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.as_tensor(w1))
        model.layers[1].weight.copy_(torch.as_tensor(np.asarray(w2, float)).reshape(1, -1))
    return model


def depth2_starts(family: LinearTaskFamily, width: int, scale: float, starts: int, seed: int):
    """``starts`` seeded two-layer nets with PyTorch's default initialisation, the head times ``scale``:
    (W1 (starts, h, d), w2 (starts, 1, h))."""
    nets = [deep_linear(family.dim, 2, width, seed=seed + s) for s in range(starts)]
    w1 = np.stack([net.layers[0].weight.detach().numpy() for net in nets])
    return w1, scale * np.stack([net.layers[1].weight.detach().numpy() for net in nets])


def sgd_losses(family: LinearTaskFamily, model: LinearChain, inner: InnerLoop, meta_lr: float,
               iterations, meta_batch: int, seeds: int, eval_tasks: int, seed: int = 0,
               progress: bool | str = False) -> np.ndarray:
    """The post-adaptation loss after n plain-SGD meta-steps from ``model``'s weights, for each n in
    ``iterations`` and each of ``seeds`` runs: (len(iterations), seeds), each the mean over ``eval_tasks``
    fresh tasks (the literal inner loop)."""
    iterations = [int(n) for n in iterations]
    if not iterations or min(iterations) < 0:
        raise ParameterError("iterations", iterations, "iteration counts ≥ 0")
    wanted, kept = set(iterations), {}

    def keep(run, i, params, _):
        if i in wanted:
            kept[run, i] = {k: v.detach().clone() for k, v in params.items()}

    models = [model] * seeds
    results = meta_train_runs(models, lambda n, gen: sample_regression_tasks(family, n, gen), inner,
                              max(iterations), seeds=[seed + 1000 * r for r in range(seeds)],
                              meta_batch=meta_batch, meta_lr=meta_lr, optimizer="sgd", on_step=keep,
                              progress=progress)
    failed = [r for r in results if isinstance(r, DivergenceError)]
    if failed:
        raise failed[0]
    sampler = lambda n, gen: sample_regression_tasks(family, n, gen)  # noqa: E731
    return np.array([[evaluate(model, kept[r, n], sampler, inner, eval_tasks,
                                seed=seed + 7 + 1000 * r)["post_loss"].mean for r in range(seeds)]
                     for n in iterations])
