"""Twins of theory.fixed_points: the engine's own outer directions on tasks sampled from the group mixture.

Two twins, neither built from the closed form:
* ``outer_direction``: the Monte-Carlo mean of an algorithm's outer direction at a given θ (MAML and FO-MAML:
  autograd of simulations.maml.meta_loss; Reptile: simulations.reptile.reptile_direction; ERM: the query-loss
  gradient, k = 0). At the closed-form θ* it must be 0, and at θ* + 1 it must be h·1 (h the closed-form rate).
* ``meta_trained_fixed_point``: meta-train the algorithm (simulations.training.meta_train, plain SGD: half the
  iterations at a constant step, then the other half with a cosine decay to 0) on the mixture and read where it
  settles: per run the mean of the decaying half's iterates, then the mean and a Student-t 95% interval over
  independent runs (seeds). SGD, not Adam: every
  outer direction here is affine in θ with coefficients independent of θ_t (a fresh meta-batch each step), so
  E θ_{t+1} − θ* = (1 − η_t h)(E θ_t − θ*) exactly and the averaged iterate is unbiased once the transient has
  decayed; Adam's division by a running √v correlated with the current direction settles measurably off θ*
  with heavy-tailed directions (MAML, FO-MAML and ERM, 2–3 standard errors at 200 iterations). The step is
  η₀ = lr_scale / Σ_g p_g a_g (the inverse mean input variance, a property of the data, not of the closed form).

K = ∞ (the population gradient): the support set is d fixed points X = √(a d) I with noise-free labels, whose
second moment XᵀX/d is Σx = a I exactly, so the engine's own inner steps are population gradient steps; the
query set stays random.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats

from simulations.maml import InnerLoop, meta_loss
from simulations.models import shallow_linear
from simulations.reptile import reptile_direction
from simulations.statistics import Estimate
from simulations.tasks import TaskBatch, make_generator, sample_inputs, sample_regression_tasks, sample_task_weights
from simulations.training import TaskSampler, meta_train
from theory.fixed_points import ALGORITHMS, Mixture, TaskGroup, group_family
from theory.ground.errors import ParameterError, require_int, require_real
from theory.wishart_moments import inverse_support


def group_sampler(group: TaskGroup, dim: int, support: int | float, query: int = 10,
                  noise_var: float = 0.0) -> TaskSampler:
    """(n_tasks, generator) -> TaskBatch of group g's tasks; K = ∞: the exact population support set (module doc)."""
    family = group_family(group, dim, support, query, noise_var)
    if inverse_support(support) > 0:
        return lambda n, gen: sample_regression_tasks(family, n, gen)

    def population(n: int, gen: torch.Generator) -> TaskBatch:
        w = sample_task_weights(family, n, gen)  # (T, d)
        x_q = sample_inputs(family, (n, query), gen)  # (T, Q, d)
        y_q = torch.einsum("tqd,td->tq", x_q, w) + noise_var**0.5 * torch.randn(
            (n, query), generator=gen, dtype=torch.float32).to(torch.float64)
        x_s = math.sqrt(group.input_var * dim) * torch.eye(dim, dtype=torch.float64).expand(n, dim, dim)  # (T, d, d)
        return TaskBatch(x_s, torch.einsum("tkd,td->tk", x_s, w), x_q, y_q, w)

    return population


def mixture_sampler(mixture: Mixture, query: int = 10) -> TaskSampler:
    """(n_tasks, generator) -> TaskBatch: each task's group drawn with probabilities p_g, then its task."""
    groups = mixture.groups
    samplers = [group_sampler(g, mixture.dim, mixture.support, query, mixture.noise_var) for g in groups]
    probs = torch.tensor([g.prob for g in groups], dtype=torch.float64)

    def sample(n: int, gen: torch.Generator) -> TaskBatch:
        counts = torch.bincount(torch.multinomial(probs, n, replacement=True, generator=gen), minlength=len(groups))
        parts = [s(int(c), gen) for s, c in zip(samplers, counts) if c > 0]
        return TaskBatch(*(torch.cat([getattr(p, f) for p in parts]) for f in
                           ("x_support", "y_support", "x_query", "y_query", "weights")))

    return sample


def inner_loop(algorithm: str, alpha: float, steps: int) -> tuple[InnerLoop, str]:
    """(InnerLoop, meta_train's outer) of an algorithm: ERM is k = 0 (the query loss at θ itself)."""
    if algorithm not in ALGORITHMS:
        raise ParameterError("algorithm", algorithm, f"one of {ALGORITHMS}")
    if algorithm == "erm":
        return InnerLoop(alpha, 0), "maml"
    return InnerLoop(alpha, steps, first_order=algorithm == "fomaml"), "reptile" if algorithm == "reptile" else "maml"


def outer_direction(mixture: Mixture, theta, algorithm: str, n_tasks: int = 20_000, batch: int = 200,
                    query: int = 10, seed: int = 0) -> Estimate:
    """E over the mixture of the algorithm's outer direction at θ, averaged over coordinates (1ᵀD/d).

    Stratified: per group the mean over ``n_tasks`` tasks (standard error from the means of batches of
    ``batch`` tasks), combined as Σ_g p_g mean_g with se = √(Σ_g p_g² se_g²).
    """
    m, gen = mixture, make_generator(seed)
    inner, outer = inner_loop(algorithm, m.alpha, m.steps)
    model = shallow_linear(m.dim)
    point = torch.as_tensor(np.asarray(theta, float).reshape(1, m.dim))
    mean, var, n = 0.0, 0.0, 0
    for g in m.groups:
        sampler = group_sampler(g, m.dim, m.support, query, m.noise_var)
        values = [_batch_direction(model, point, sampler(batch, gen), inner, outer)
                  for _ in range(max(2, require_int("n_tasks", n_tasks, 2) // batch))]
        est = Estimate.from_samples(values)
        mean, var, n = mean + g.prob * est.mean, var + (g.prob * est.stderr) ** 2, n + est.n * batch
    return Estimate(mean, math.sqrt(var), n)


def _batch_direction(model, point: torch.Tensor, batch: TaskBatch, inner: InnerLoop, outer: str) -> float:
    """The mean over a batch of the outer direction at θ, averaged over coordinates."""
    params = {model.head_name: point.clone().requires_grad_(outer == "maml")}
    if outer == "reptile":
        return reptile_direction(model, params, batch, inner)[0][model.head_name].mean().item()
    meta_loss(model, params, batch, inner).backward()
    return params[model.head_name].grad.mean().item()


@dataclass(frozen=True)
class MetaTrained:
    """Where meta-training settles: the mean over runs of each run's tail-averaged θ, with a 95% interval."""

    theta: np.ndarray  # (d,), mean over runs
    ci95: np.ndarray  # (d,), half-width of the Student-t 95% interval over runs
    stderr: np.ndarray  # (d,), standard error over runs
    runs: int

    def as_dict(self) -> dict:
        return {"theta": self.theta.tolist(), "ci95": self.ci95.tolist(), "stderr": self.stderr.tolist(),
                "runs": self.runs, "interval": "Student-t 95% over independent runs (seeds), each run the mean "
                                               "of its iterates while the step decays"}


def meta_trained_fixed_point(mixture: Mixture, algorithm: str, runs: int = 4, iterations: int = 200,
                             meta_batch: int = 64, lr_scale: float = 1.0, query: int = 10,
                             seed: int = 0) -> MetaTrained:
    """Meta-train ``algorithm`` on the mixture ``runs`` times (seeds seed, seed + 1, …) and report where it settles."""
    runs, iterations = require_int("runs", runs, 2), require_int("iterations", iterations, 4)
    inner, outer = inner_loop(algorithm, mixture.alpha, mixture.steps)
    sampler = mixture_sampler(mixture, query)
    meta_lr = require_real("lr_scale", lr_scale, 0.0, strict=True) / sum(g.prob * g.input_var for g in mixture.groups)
    tails = []
    for r in range(runs):
        model = shallow_linear(mixture.dim, seed=seed + r)
        burn_in = meta_train(model, sampler, inner, iterations // 2, meta_batch, meta_lr, seed=2 * (seed + r),
                             outer=outer, optimizer="sgd")  # constant step: the transient decays as (1 − η h)^t
        with torch.no_grad():
            model.get_parameter(model.head_name).copy_(burn_in.params[model.head_name])
        trace: list[torch.Tensor] = []

        def record(i, params, _, trace=trace, name=model.head_name):
            if i > 0:
                trace.append(params[name].detach().ravel().clone())

        meta_train(model, sampler, inner, iterations - iterations // 2, meta_batch, meta_lr,
                   seed=2 * (seed + r) + 1, lr_decay=True, on_step=record, outer=outer, optimizer="sgd")
        tails.append(torch.stack(trace).mean(0).numpy())  # (d,), mean of the settling half
    values = np.stack(tails)  # (runs, d)
    stderr = values.std(axis=0, ddof=1) / math.sqrt(runs)
    return MetaTrained(values.mean(0), stats.t.ppf(0.975, runs - 1) * stderr, stderr, runs)


__all__ = ["MetaTrained", "group_sampler", "inner_loop", "meta_trained_fixed_point",
           "mixture_sampler", "outer_direction"]
