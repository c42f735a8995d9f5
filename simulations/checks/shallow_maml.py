"""verify checks of theory.shallow_maml: the symbolic update, the pre-/post-adaptation losses against
Monte-Carlo, and the MAML optima (θ* = μ, α*) against meta-training."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import sympy as sp
import torch

from simulations.checks.fixtures import general_family, regression_sampler
from simulations.checks.rules import Check, declare, interval_check, optimum_check, symbolic_check
from simulations.maml import InnerLoop
from simulations.models import shallow_linear
from simulations.training import evaluate, meta_train
from simulations.transforms import scalar_step
from simulations.twins.shallow_maml import (
    estimate_best_post_adaptation_loss,
    estimate_post_adaptation_loss,
    estimate_pre_adaptation_loss,
)
from theory import shallow_maml
from theory.task_family import LinearTaskFamily


def check_update_symbolic(scale: float) -> Check:
    derived, closed = shallow_maml.one_step_update_symbolic(3, 2)
    nonzero = sum(1 for e in sp.simplify(derived - closed) if e != 0)
    return symbolic_check("d=3, K=2, symbolic X, y, w, α", nonzero,
                          "sympy gradient step − closed form")


def check_pre_loss(scale: float) -> Check:
    family, theta = general_family()
    est = estimate_pre_adaptation_loss(family, theta, int(100_000 * scale), seed=3)
    return interval_check("d=6, random Σx, Σw, μ≠0, θ≠μ, s²=0.25",
                          shallow_maml.pre_adaptation_loss(family, theta), est)


def check_post_loss_general(scale: float) -> Check:
    family, theta = general_family()
    est = estimate_post_adaptation_loss(family, theta, 0.2, 1, int(100_000 * scale), seed=4)
    return interval_check("d=6, K=4, random Σx, Σw, μ≠0, θ≠μ, s²=0.25, α=0.2",
                          shallow_maml.post_adaptation_loss(family, theta, 0.2), est)


def check_best_post_loss(scale: float) -> Check:
    family = LinearTaskFamily.subspace(30, 5, 10, rank=3, seed=1)
    alpha = shallow_maml.optimal_step_size(family)
    est = estimate_best_post_adaptation_loss(family, alpha, 1, int(50_000 * scale), seed=5)
    return interval_check(f"d=30, K=5, r=3, θ=μ, α*={alpha:.4f}",
                          shallow_maml.best_post_adaptation_loss(family), est)


def check_post_loss_k_steps(scale: float) -> Check:
    family = LinearTaskFamily.subspace(8, 4, 10, rank=3, noise_var=0.2, mean_norm=1.0, seed=2)
    theta = family.task_mean + 0.3
    est = estimate_post_adaptation_loss(family, theta, 0.15, 3, int(100_000 * scale), seed=6)
    return interval_check("Σx=I, d=8, K=4, r=3, s²=0.2, θ≠μ, α=0.15, k=3",
                          shallow_maml.post_adaptation_loss(family, theta, 0.15, 3), est)


def _post_loss_many_steps(scale: float, steps: int) -> Check:
    """The exact k-step loss against the literal inner loop; α = 0.1 is a fifth of the one-step α* = K/(K+d+1),
    so |1 − αλ| stays below 1 for all but rare Ŝ and the loss's tail (powers of Ŝ up to 2k) stays light."""
    family = LinearTaskFamily.subspace(6, 6, 10, rank=3, noise_var=0.2, mean_norm=1.0, seed=7)
    theta = family.task_mean + 0.2
    est = estimate_post_adaptation_loss(family, theta, 0.1, steps, int(100_000 * scale), seed=10 + steps)
    return interval_check(f"Σx=I, d=6, K=6, r=3, s²=0.2, θ≠μ, α=0.1 (one-step α*=0.46), k={steps}",
                          shallow_maml.post_adaptation_loss(family, theta, 0.1, steps), est)


def check_post_loss_5_steps(scale: float) -> Check:
    return _post_loss_many_steps(scale, 5)


def check_post_loss_10_steps(scale: float) -> Check:
    return _post_loss_many_steps(scale, 10)


@lru_cache(maxsize=2)
def _meta_trained_shallow(scale: float):
    family = LinearTaskFamily.subspace(10, 5, 10, rank=10, mean_norm=2.0, seed=3)
    alpha = shallow_maml.optimal_step_size(family)
    model = shallow_linear(family.dim, seed=0)
    result = meta_train(model, regression_sampler(family), InnerLoop(alpha), int(1500 * scale) + 100,
                        meta_batch=64, meta_lr=0.02, seed=7, lr_decay=True)
    return family, alpha, model, result


def check_init_converges_to_mu(scale: float) -> Check:
    family, _, model, result = _meta_trained_shallow(scale)
    theta = result.params[model.head_name].numpy().ravel()
    rel = np.linalg.norm(theta - family.task_mean) / np.linalg.norm(family.task_mean)
    return optimum_check("d=10, K=5, ‖μ‖=2, MAML+Adam: ‖θ−μ‖/‖μ‖",
                         0.0, rel, rel, 0.05, "relative distance")


def check_meta_trained_loss(scale: float) -> Check:
    family, alpha, model, result = _meta_trained_shallow(scale)
    theta = result.params[model.head_name].numpy().ravel()
    est = evaluate(model, result.params, regression_sampler(family), InnerLoop(alpha),
                   int(50_000 * scale), seed=8)["post_loss"]
    return interval_check("the meta-trained θ above, fresh tasks",
                          shallow_maml.post_adaptation_loss(family, theta, alpha), est)


def check_optimal_alpha(scale: float) -> Check:
    family = LinearTaskFamily.subspace(20, 5, 10, rank=4, noise_var=0.5, seed=4)
    model = shallow_linear(family.dim)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.as_tensor(family.task_mean)[None])
    base = 0.05
    result = meta_train(model, regression_sampler(family), InnerLoop(base), int(1500 * scale) + 100,
                        meta_batch=128, meta_lr=0.02, seed=9, learn_init=False,
                        transform=scalar_step(), lr_decay=True)
    learned = base * float(torch.exp(result.transform.params["log_scale"]))
    theory = shallow_maml.optimal_step_size(family)
    return optimum_check("d=20, K=5, r=4, s²=0.5, θ=μ, α meta-learned by MAML",
                         theory, learned, abs(learned - theory) / theory, 0.1, "relative error")


CHECKS = declare("shallow_maml", {
    "one_step_update": check_update_symbolic,
    "pre_adaptation_loss": check_pre_loss,
    "post_loss_one_step": check_post_loss_general,
    "best_post_loss": check_best_post_loss,
    "post_loss_k_steps": check_post_loss_k_steps,
    "post_loss_5_steps": check_post_loss_5_steps,
    "post_loss_10_steps": check_post_loss_10_steps,
    "meta_trained_init": check_init_converges_to_mu,
    "meta_trained_post_loss": check_meta_trained_loss,
    "optimal_step_size": check_optimal_alpha,
})
