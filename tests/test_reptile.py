"""Reptile (simulations.reptile and meta_train's outer="reptile" hook) against the literal loop in numpy."""
from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from simulations.maml import InnerLoop
from simulations.models import shallow_linear
from simulations.reptile import reptile_direction
from simulations.tasks import TaskBatch, sample_regression_tasks
from simulations.training import meta_train
from simulations.transforms import matrix_preconditioner
from tests.helpers import assert_close
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily

FAMILY = LinearTaskFamily.subspace(4, 3, 5, noise_var=0.2, mean_norm=1.0, seed=1)


def _literal_adapted(theta: np.ndarray, batch: TaskBatch, alpha: float, steps: int) -> np.ndarray:
    """θ_k per task by k explicit gradient steps on ½ mean (Xθ − y)²: (T, d)."""
    out = []
    for x, y in zip(batch.x_support.numpy(), batch.y_support.numpy()):
        w = theta.copy()
        for _ in range(steps):
            w = w - alpha * x.T @ (x @ w - y) / len(y)
        out.append(w)
    return np.array(out)


@pytest.mark.parametrize("steps", [0, 1, 3])
def test_direction_is_theta_minus_the_mean_adapted_weights(steps):
    batch = sample_regression_tasks(FAMILY, 6, 3)
    model = shallow_linear(4, seed=2)
    theta = model.layers[0].weight.detach().clone()  # (1, d)
    direction, loss = reptile_direction(model, {model.head_name: theta.requires_grad_(True)}, batch,
                                        InnerLoop(0.3, steps))
    adapted = _literal_adapted(theta.detach().numpy().ravel(), batch, 0.3, steps)  # (T, d)
    assert_close(direction[model.head_name].numpy().ravel(), theta.detach().numpy().ravel() - adapted.mean(0))
    query = np.mean([0.5 * np.mean((x @ w - y) ** 2) for x, y, w in
                     zip(batch.x_query.numpy(), batch.y_query.numpy(), adapted)])
    assert_close(loss.item(), query, 1e-12, "post-adaptation query loss")


def test_sgd_is_the_usual_reptile_step():
    """meta_train(outer="reptile", optimizer="sgd", meta_lr=ε): θ ← θ + ε (mean_τ θ_k,τ − θ), step by step."""
    model, eps, seen = shallow_linear(4, seed=3), 0.7, []
    sampler = lambda n, gen: sample_regression_tasks(FAMILY, n, gen)  # noqa: E731
    meta_train(model, sampler, InnerLoop(0.2, 2), 3, meta_batch=5, meta_lr=eps, seed=4, outer="reptile",
               optimizer="sgd", on_step=lambda i, p, _: seen.append(p[model.head_name].detach().numpy().ravel().copy()))
    gen = torch.Generator().manual_seed(4)
    for before, after in pairwise(seen):
        adapted = _literal_adapted(before, sampler(5, gen), 0.2, 2)
        assert_close(after, before + eps * (adapted.mean(0) - before), 1e-12)


def test_reptile_settles_at_the_mean_task_for_one_group():
    """One group, Σx = I: E[θ − θ_k] = E[I − A](θ − μ), so Reptile's fixed point is μ."""
    model = shallow_linear(4, seed=5)
    result = meta_train(model, lambda n, gen: sample_regression_tasks(FAMILY, n, gen), InnerLoop(0.3, 2), 300,
                        meta_batch=32, meta_lr=1.0, seed=6, outer="reptile", optimizer="sgd", lr_decay=True)
    assert np.abs(result.params[model.head_name].numpy().ravel() - FAMILY.task_mean).max() < 0.1
    assert len(result.history) == 300


def test_bad_outer_and_optimizer_are_refused():
    model = shallow_linear(4)
    sampler = lambda n, gen: sample_regression_tasks(FAMILY, n, gen)  # noqa: E731
    with pytest.raises(ParameterError, match="outer"):
        meta_train(model, sampler, InnerLoop(0.1), 1, outer="anil")
    with pytest.raises(ParameterError, match="optimizer"):
        meta_train(model, sampler, InnerLoop(0.1), 1, optimizer="lbfgs")
    with pytest.raises(ParameterError, match="outer"):
        meta_train(model, sampler, InnerLoop(0.1), 1, outer="reptile",
                   transform=matrix_preconditioner(model.head_name, 4))
