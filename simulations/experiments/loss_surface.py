"""Figure 2's numbers, the loss surface: the shallow and depth-2 scalar meta-objectives, their minima and
SGD meta-training paths on them (d = 1), with the adapted weights of a few tasks.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from simulations.maml import InnerLoop, adapt, initial_params, meta_loss
from simulations.models import deep_linear, shallow_linear
from simulations.tasks import make_generator, sample_regression_tasks
from theory.scalar_deep import depth2_scalar_meta_objective, depth2_scalar_minima
from theory.shallow_maml import optimal_step_size, post_adaptation_loss, pre_adaptation_loss, reference_losses
from theory.task_family import LinearTaskFamily

LAYERS = ("layers.0.weight", "layers.1.weight")  # w₁ (bottom), w₂ (top) of deep_linear(1, 2, 1)


@dataclass(frozen=True)
class Settings:
    """Figure 2's setting: the scalar task family, the grid and the SGD paths."""

    support: int = 5  # K
    query: int = 20  # Q, query points per sampled task
    mu: float = 1.0  # μ, mean task weight
    task_var: float = 1.0  # σ², task-weight variance
    alpha: float = 0.2  # inner step on every layer: below α*/2 (α* = K/(K+2)), so the depth-2 model
    # can raise its effective step α(w₁² + w₂²) ≥ 2α|W| towards α* and the shallow one cannot
    shallow_init: float = -1.0  # w at iteration 0: left of the minimum, so the path spans the curve
    deep_init: tuple[float, float] = (0.15, 0.05)  # (w₁, w₂): small, near the saddle at 0, off the diagonal
    iterations: int = 400  # SGD steps (the depth-2 path reaches its minimum at about 300)
    meta_batch: int = 64  # tasks per meta-gradient
    meta_lr: float = 0.05  # SGD step on the meta-parameters
    record_every: int = 5  # trajectory resolution
    n_tasks_shown: int = 6  # adaptation arrows at the end of training
    span: float = 2.5  # contour window [−span, span]²
    grid: int = 121  # contour resolution per axis


def _family(config: Settings) -> LinearTaskFamily:
    return LinearTaskFamily(1, config.support, config.query, task_mean=np.array([config.mu]),
                            task_factor=np.array([[config.task_var**0.5]]))


def _sgd_path(model, init: tuple[float, ...], family, inner, config: Settings, seed: int) -> tuple[list, dict]:
    """Plain SGD on the MAML objective from ``init``; the parameters every record_every steps."""
    params = initial_params(model)
    with torch.no_grad():
        for p, value in zip(params.values(), init):
            p.fill_(value)
    gen, path = make_generator(seed), []
    for i in range(config.iterations + 1):
        if i % config.record_every == 0 or i == config.iterations:
            path.append([i] + [p.item() for p in params.values()])
        if i == config.iterations:
            break
        loss = meta_loss(model, params, sample_regression_tasks(family, config.meta_batch, gen), inner)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"figure 2: the meta-loss became {loss.item()} at SGD step {i}")
        grads = torch.autograd.grad(loss, list(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads):
                p -= config.meta_lr * g
    return path, params


def _adaptation_arrows(model, params, family, inner, config: Settings, seed: int) -> list[dict]:
    """(w₁, w₂) → (w₁', w₂') for a few sampled tasks, by the literal inner step (simulations.maml.adapt)."""
    batch = sample_regression_tasks(family, config.n_tasks_shown, make_generator(seed + 777))
    detached = {n: p.detach() for n, p in params.items()}
    arrows = []
    for t in range(batch.n_tasks):
        fast = adapt(model, detached, batch.x_support[t], batch.y_support[t], inner)
        arrows.append({"task_weight": batch.weights[t, 0].item(), "w1": detached[LAYERS[0]].item(),
                       "w2": detached[LAYERS[1]].item(), "w1_adapted": fast[LAYERS[0]].item(),
                       "w2_adapted": fast[LAYERS[1]].item()})
    return arrows


def _shallow_path(config: Settings, seed: int) -> list[list[float]]:
    """Unit: the shallow model's SGD path, [iteration, w] every record_every steps."""
    path, _ = _sgd_path(shallow_linear(1), (config.shallow_init,), _family(config), InnerLoop(config.alpha),
                        config, seed)
    return path


def _deep_path(config: Settings, seed: int) -> dict[str, list]:
    """Unit: the depth-2 model's SGD path, [iteration, w₁, w₂], and the adaptation arrows at its end."""
    family, inner, model = _family(config), InnerLoop(config.alpha), deep_linear(1, 2, 1)
    path, params = _sgd_path(model, config.deep_init, family, inner, config, seed + 1)
    return {"path": path, "arrows": _adaptation_arrows(model, params, family, inner, config, seed)}


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], object]]:
    """The two meta-trained models: key -> a picklable zero-argument callable."""
    return {"shallow": partial(_shallow_path, config, seed), "deep": partial(_deep_path, config, seed)}


def assemble(config: Settings, seed: int, done: dict[str, object]) -> dict:
    """Closed-form surfaces around both SGD trajectories (from the finished units) and the adaptation arrows."""
    family = _family(config)
    k, mu, var, alpha = config.support, config.mu, config.task_var, config.alpha
    w = np.linspace(-config.span, config.span, config.grid)
    shallow = {"w": w.tolist(), "post": [post_adaptation_loss(family, np.array([v]), alpha) for v in w],
               "pre": [pre_adaptation_loss(family, np.array([v])) for v in w]}
    shallow["path"] = [{"iteration": i, "w": v, "loss": post_adaptation_loss(family, np.array([v]), alpha)}
                       for i, v in done["shallow"]]
    g1, g2 = np.meshgrid(w, w, indexing="xy")  # (grid, grid): rows w₂, columns w₁
    objective = lambda a, b: depth2_scalar_meta_objective(a, b, alpha, k, mu, var)  # noqa: E731
    deep = {"surface": objective(g1, g2).tolist(),
            "path": [{"iteration": i, "w1": a, "w2": b, "loss": objective(a, b)} for i, a, b in done["deep"]["path"]],
            "minima": [{"w1": a, "w2": b, "loss": v}
                       for a, b, v in depth2_scalar_minima(alpha, k, mu, var)],
            "arrows": done["deep"]["arrows"]}
    levels = reference_losses(family)  # at w = μ
    theory = {"support": k, "mu": mu, "task_var": var, "alpha": alpha,
              "shallow_alpha_star": optimal_step_size(family),
              "shallow_best_post_loss": levels["shallow_best_post_loss"],
              "shallow_post_loss_at_mu": post_adaptation_loss(family, np.array([mu]), alpha),
              "pre_adaptation_loss_at_mu": levels["pre_adaptation_loss"],
              "deep_min_loss": deep["minima"][0]["loss"]}
    return {"shallow": shallow, "deep": deep, "theory": theory}
