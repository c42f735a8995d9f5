"""verify checks of theory.preconditioned_maml: the preconditioned one-step loss and its optimum P*
against Monte-Carlo, the optimum reached by meta-learning P (a full matrix, or PSD KFO factors), the
PSD KFO step as a preconditioned step, and the closed-form meta-gradient against autograd."""
from __future__ import annotations

import numpy as np
import torch

from simulations.checks.fixtures import SUBSPACE, general_family, regression_sampler
from simulations.checks.rules import Check, declare, identity_check, interval_check
from simulations.kfo import kfo_transform
from simulations.maml import InnerLoop, adapt, meta_loss
from simulations.meta_gradient import shallow_meta_gradient
from simulations.models import shallow_linear
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train
from simulations.transforms import matrix_preconditioner
from simulations.twins.preconditioned_maml import estimate_preconditioned_post_adaptation_loss
from theory import preconditioned_maml
from theory.task_family import LinearTaskFamily


def check_precond_loss(scale: float) -> Check:
    family, theta = general_family()
    precond = 0.3 * np.eye(6) + 0.1 * np.random.default_rng(6).standard_normal((6, 6))
    est = estimate_preconditioned_post_adaptation_loss(family, theta, precond, 0.5, int(100_000 * scale), seed=10)
    return interval_check("d=6, K=4, random Σx, Σw, μ, θ, non-symmetric P, α=0.5",
                          preconditioned_maml.preconditioned_post_adaptation_loss(family, theta, precond, 0.5), est)


def check_optimal_precond_loss(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    est = estimate_preconditioned_post_adaptation_loss(
        family, family.task_mean, preconditioned_maml.optimal_preconditioner(family), 1.0, int(50_000 * scale),
        seed=11)
    return interval_check("Σx=I, d=20, K=5, r=2, θ=μ, P=P*",
                          preconditioned_maml.preconditioned_best_post_loss(family), est)


def check_meta_learned_precond(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    model = shallow_linear(family.dim)
    result = meta_train(model, regression_sampler(family), InnerLoop(0.1), int(1500 * scale) + 100,
                        meta_batch=128, meta_lr=0.01, seed=12,
                        transform=matrix_preconditioner(model.head_name, family.dim), lr_decay=True)
    est = estimate_preconditioned_post_adaptation_loss(
        family, result.params[model.head_name].numpy().ravel(), result.transform.params["precond"].numpy(),
        0.1, int(50_000 * scale), seed=13)
    return interval_check("d=20, K=5, r=2: MAML learns θ and a full P",
                          preconditioned_maml.preconditioned_best_post_loss(family), est)


def check_kfo_psd_step(scale: float) -> Check:
    d, k, alpha = 7, 4, 0.3
    rng = np.random.default_rng(27)
    x, y, theta = rng.standard_normal((k, d)), rng.standard_normal(k), rng.standard_normal((1, d))
    left, right = rng.standard_normal((1, 1)), rng.standard_normal((d, d))
    model = shallow_linear(d)
    name = model.head_name
    factors = {f"{name}:L": torch.as_tensor(left), f"{name}:R": torch.as_tensor(right)}
    transform = kfo_transform(model, "psd", names=[name]).with_params(factors)
    literal = adapt(model, {name: torch.as_tensor(theta)}, torch.as_tensor(x), torch.as_tensor(y),
                    InnerLoop(alpha), transform)[name].numpy()  # (1, d), autograd
    grad = ((x @ theta.ravel() - y) @ x / k).reshape(1, d)  # G = ∇θ ½ mean (θᵀx − y)², (1, d)
    precond = np.kron(right.T @ right, left.T @ left)  # P = (RᵀR) ⊗ (LᵀL), (d, d)
    step = (precond @ grad.ravel(order="F")).reshape(1, d, order="F")  # unvec(P vec G), column-major
    return identity_check("shallow d=7, K=4, α=0.3, random L 1×1, R 7×7",
                          theta - alpha * step, literal)


def check_kfo_reaches_optimal_preconditioner(scale: float) -> Check:
    family = LinearTaskFamily.subspace(**SUBSPACE, seed=5)
    model = shallow_linear(family.dim)
    transform = kfo_transform(model, "psd")
    inner = InnerLoop(0.5)
    result = meta_train(model, regression_sampler(family), inner, int(1500 * scale) + 100,
                        meta_batch=128, meta_lr=0.01, seed=12, transform=transform, lr_decay=True)
    est = evaluate(model, result.params, regression_sampler(family), inner, int(200_000 * scale), seed=13,
                   transform=result.transform)["post_loss"]
    return interval_check("d=20, K=5, r=2, α=0.5: MAML learns θ and PSD KFO factors L (1×1), R (20×20)",
                          preconditioned_maml.preconditioned_best_post_loss(family), est)


def check_meta_gradient(scale: float) -> Check:
    family = LinearTaskFamily.subspace(7, 3, 4, rank=2, noise_var=0.1, seed=6)
    batch = sample_regression_tasks(family, 16, 14)
    gen = torch.Generator().manual_seed(15)
    theta = torch.randn(7, generator=gen, dtype=torch.float64)
    precond = torch.randn(7, 7, generator=gen, dtype=torch.float64)
    closed = shallow_meta_gradient(theta, batch, 0.3, precond)
    model = shallow_linear(7)
    params = {model.head_name: theta[None].clone().requires_grad_(True)}
    transform = matrix_preconditioner(model.head_name, 7).with_params({"precond": precond.clone().requires_grad_(True)})
    meta_loss(model, params, batch, InnerLoop(0.3), transform).backward()
    auto = np.concatenate([params[model.head_name].grad.ravel(), transform.params["precond"].grad.ravel()])
    mine = np.concatenate([closed.theta.ravel(), closed.precond.ravel()])
    return identity_check("d=7, K=3, 16 tasks: closed-form ∂/∂θ and ∂/∂P vs autograd", mine, auto)


CHECKS = declare("preconditioned_maml", {
    "post_loss": check_precond_loss,
    "best_post_loss": check_optimal_precond_loss,
    "meta_learned": check_meta_learned_precond,
    "meta_gradient": check_meta_gradient,
    "kfo_psd_step": check_kfo_psd_step,
    "kfo_meta_learned": check_kfo_reaches_optimal_preconditioner,
})
