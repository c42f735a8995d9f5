"""Twins of theory.finite_tasks: meta-training on a finite task set by literal gradient descent, the
nearest-ω₀ minimiser from the literal objective's Jacobian, and the test loss on fresh tasks by Monte-Carlo.

Every quantity here goes through the functional MAML engine (simulations.maml: autograd through the inner
step, float64); nothing forms the closed-form system (A, b) or calls the closed forms it is checked against.
"""
from __future__ import annotations

import numpy as np
import torch
from torch.func import functional_call, jacrev, vmap

from simulations.maml import InnerLoop, adapt, meta_loss
from simulations.models import shallow_linear
from simulations.statistics import Estimate
from simulations.tasks import TaskBatch, make_generator, sample_regression_tasks
from simulations.twins.shallow_maml import shallow_query_losses
from theory.task_family import LinearTaskFamily

POWER_ITERATIONS = 30  # Hessian-vector products to find the largest curvature (the objective is quadratic)


def training_batch(x_support, y_support, x_query, y_query) -> TaskBatch:
    """Numpy training set(s) as a TaskBatch (float64): (m, …) for one set, (R, m, …) for R sets."""
    return TaskBatch(*(torch.as_tensor(np.asarray(a, float)) for a in (x_support, y_support, x_query, y_query)))


def _largest_curvature(loss, omega: torch.Tensor, gen: torch.Generator) -> float:
    """λ_max of the Hessian of ``loss`` at ω by power iteration on autograd Hessian-vector products."""
    v = torch.randn(omega.shape, generator=gen, dtype=omega.dtype)
    value = 0.0
    for _ in range(POWER_ITERATIONS):
        v = v / v.norm()
        (g,) = torch.autograd.grad(loss(omega), omega, create_graph=True)
        (hv,) = torch.autograd.grad((g * v).sum(), omega)
        value, v = float((hv * v).sum()), hv
    return value


def gradient_descent_init(x_support, y_support, x_query, y_query, train_alpha: float, init,
                          max_steps: int = 20_000, grad_tol: float = 1e-13) -> dict:
    """Twin of theory.finite_tasks.meta_trained_init: plain gradient descent on the empirical MAML objective.

    ω ← ω − η ∇J(ω) from ω₀, J = mean over the m tasks of the query loss after one literal inner step of
    size α_t (simulations.maml.meta_loss, second order), η = 1/λ_max(∇²J) found by power iteration; stops
    when ‖∇J‖ ≤ grad_tol·(1 + ‖∇J(ω₀)‖) or after max_steps. Returns {"omega" (d,), "steps", "loss"}.
    """
    batch = training_batch(x_support, y_support, x_query, y_query)
    dim = batch.x_support.shape[-1]
    model, inner = shallow_linear(dim), InnerLoop(train_alpha)

    def loss(omega: torch.Tensor) -> torch.Tensor:
        return meta_loss(model, {model.head_name: omega[None]}, batch, inner)

    omega = torch.as_tensor(np.asarray(init, float)).clone().requires_grad_(True)
    rate = 1.0 / _largest_curvature(loss, omega, make_generator(0))
    first, steps = None, 0
    for steps in range(max_steps + 1):
        (g,) = torch.autograd.grad(loss(omega), omega)
        first = float(g.norm()) if first is None else first
        if float(g.norm()) <= grad_tol * (1 + first) or steps == max_steps:
            break
        with torch.no_grad():
            omega -= rate * g
    final = omega.detach()
    return {"omega": final.numpy().copy(), "steps": steps, "loss": float(loss(final))}


def _query_residuals(model, train_alpha: float):
    """r(ω; task) = y_v − X_v ω'(ω): the query residuals after one literal inner step, (n_v,) per task."""
    inner = InnerLoop(train_alpha)

    def residual(omega, x_s, y_s, x_q, y_q):
        fast = adapt(model, {model.head_name: omega[None]}, x_s, y_s, inner)
        return y_q - functional_call(model, fast, (x_q,))  # (n_v,)

    return residual


def nearest_minimisers(training_sets: TaskBatch, train_alpha: float, init) -> torch.Tensor:
    """ω* for each training set (R of them, batch shapes (R, m, …)) from the literal residuals r(ω).

    r is affine in ω, so J = ½‖r‖²/N is minimised nearest ω₀ by one Gauss-Newton step ω₀ − J_r⁺ r(ω₀),
    with the Jacobian J_r taken by autograd (jacrev) through the inner step; returns (R, d).
    """
    dim = training_sets.x_support.shape[-1]
    residual = _query_residuals(shallow_linear(dim), train_alpha)
    per_task = vmap(residual, in_dims=(None, 0, 0, 0, 0))  # (m, n_v)

    def one_set(omega, x_s, y_s, x_q, y_q):
        r = per_task(omega, x_s, y_s, x_q, y_q).reshape(-1)  # (N,)
        jac = jacrev(lambda w: per_task(w, x_s, y_s, x_q, y_q).reshape(-1))(omega)  # (N, d)
        return omega - torch.linalg.pinv(jac) @ r

    omega0 = torch.as_tensor(np.asarray(init, float))
    return vmap(one_set, in_dims=(None, 0, 0, 0, 0))(omega0, training_sets.x_support, training_sets.y_support,
                                                     training_sets.x_query, training_sets.y_query)


def sample_training_sets(family: LinearTaskFamily, tasks: int, runs: int, seed: int) -> TaskBatch:
    """``runs`` training sets of m = ``tasks`` tasks from ``family`` (support n_t, query n_v): shapes (R, m, …)."""
    batch = sample_regression_tasks(family, runs * tasks, make_generator(seed))
    return TaskBatch(*(t.reshape(runs, tasks, *t.shape[1:]) for t in
                       (batch.x_support, batch.y_support, batch.x_query, batch.y_query, batch.weights)))


def estimate_init_error(family: LinearTaskFamily, tasks: int, train_alpha: float, init, runs: int,
                        seed: int = 0) -> Estimate:
    """Twin of E‖ω* − w₀‖² (theory.finite_tasks.approximate_init_error, exact at α_t = 0): Monte-Carlo over
    ``runs`` training sets drawn from ``family`` (its support/query are n_t/n_v), ω* by nearest_minimisers."""
    sets = sample_training_sets(family, tasks, runs, seed)
    omegas = nearest_minimisers(sets, train_alpha, init)  # (R, d)
    return Estimate.from_samples(((omegas - torch.as_tensor(family.task_mean)) ** 2).sum(-1))


def estimate_test_loss(family: LinearTaskFamily, omega, test_alpha: float, n_tasks: int = 100_000,
                       seed: int = 0) -> Estimate:
    """Twin of theory.finite_tasks.expected_test_loss: fresh test tasks from ``family``, one literal step of
    size α_r on n_r support points from ω, query loss (½ squared error per example)."""
    return Estimate.from_samples(shallow_query_losses(family, omega, test_alpha, 1, n_tasks, seed)["post_loss"])
