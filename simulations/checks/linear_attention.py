"""verify checks of theory.linear_attention: the attention layer's prediction as one preconditioned gradient step
(autograd against the literal layer), the exact test loss of any Γ at another context length against Monte-Carlo,
a trained layer reaching Γ* and its loss at a longer context, and the stacked construction as plain steps."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from simulations.checks.fixtures import random_spd
from simulations.checks.rules import Check, declare, identity_check, interval_check, optimum_check
from simulations.twins.linear_attention import (
    effective_gamma,
    estimate_icl_loss,
    estimate_stacked_loss,
    predict,
    sparse_weights,
    stacked_predict,
    train_attention,
)
from theory import linear_attention
from theory.task_family import LinearTaskFamily

TRAINED_GAMMA_TOL = 0.05  # relative Frobenius distance of a trained layer's Γ from Γ* (Adam noise, finite training)


def _trained_family() -> LinearTaskFamily:
    return LinearTaskFamily.from_covariances(4, 10, 8, task_cov=np.eye(4), input_cov=np.diag([2.0, 1.0, 0.5, 0.25]),
                                             noise_var=0.1)


def check_one_step(scale: float) -> Check:
    """ŷ of the literal layer = x_qᵀ(0 − Γ∇L̂(0)), the gradient by autograd on the context's loss."""
    rng = np.random.default_rng(51)
    d, n = 5, 7
    x, y, xq = (torch.as_tensor(a) for a in (rng.standard_normal((3, n, d)), rng.standard_normal((3, n)),
                                               rng.standard_normal((3, 2, d))))
    gamma = rng.standard_normal((d, d))
    theta = torch.zeros(3, d, dtype=torch.float64, requires_grad=True)
    support_loss = 0.5 * ((x @ theta[..., None])[..., 0] - y).pow(2).mean(-1).sum()
    (grad,) = torch.autograd.grad(support_loss, theta)  # (3, d): each context's ∇L̂(0)
    stepped = -(grad @ torch.as_tensor(gamma).T)  # θ₁ = 0 − Γ∇L̂(0)
    literal = predict(*sparse_weights(gamma, d), x, y, xq)
    return identity_check("d=5, N=7, random Γ, contexts and queries: the attention layer's ŷ vs x_qᵀ(0 − Γ∇L̂(0))",
                          (xq @ stepped[..., None])[..., 0].numpy(), literal.numpy())


def check_test_loss(scale: float) -> Check:
    rng = np.random.default_rng(52)
    family = LinearTaskFamily.from_covariances(5, 6, 8, task_cov=random_spd(5, rng) / 2, input_cov=random_spd(5, rng),
                                               task_mean=rng.standard_normal(5) / 2, noise_var=0.2)
    gamma = random_spd(5, rng) / 5
    est = estimate_icl_loss(family, *sparse_weights(gamma, 5), context=15, n_tasks=int(100_000 * scale), seed=53)
    return interval_check("d=5, N=6 tested at M=15, random Λ, Σw, μ≠0, s²=0.2, random Γ: L(Γ; M) vs the layer on "
                          "fresh prompts", linear_attention.icl_loss(family, gamma, 15), est)


@lru_cache(maxsize=4)
def _trained(scale: float):
    iterations = 400 + int(1000 * scale)
    return (*train_attention(_trained_family(), iterations, batch=128, lr=0.01, init=0.1, seed=54)[:2], iterations)


def check_trained_gamma(scale: float) -> Check:
    family = _trained_family()
    w_kq, w_pv, iterations = _trained(scale)
    star = linear_attention.optimal_gamma(family)
    error = float(np.linalg.norm(effective_gamma(w_kq, w_pv) - star) / np.linalg.norm(star))
    return optimum_check(f"d=4, N=10, Λ = diag(2, 1, 0.5, 0.25), Σw = I, s²=0.1: every entry of (W_KQ, W_PV) trained "
                         f"({iterations} Adam steps) vs Γ* = [(1 + 1/N)Λ + ((tr Λ + s²)/N)I]⁻¹",
                         0.0, error, error, TRAINED_GAMMA_TOL, "‖Γ − Γ*‖/‖Γ*‖")  # theory: distance 0


def check_trained_longer_context(scale: float) -> Check:
    family = _trained_family()
    w_kq, w_pv, iterations = _trained(scale)
    est = estimate_icl_loss(family, w_kq, w_pv, context=20, n_tasks=int(100_000 * scale), seed=55)
    return interval_check(f"the layer trained at N=10 ({iterations} steps), tested at M=20: its loss on fresh prompts "
                          "vs L(Γ*_N; M)", linear_attention.optimal_icl_loss(family, 20), est)


def check_stacked_is_plain_steps(scale: float) -> Check:
    """Three stacked layers with Γ_ℓ = (γ/3)I predict what three literal gradient steps of size γ/3 from 0 do."""
    rng = np.random.default_rng(56)
    d, n, gamma = 4, 6, 0.9
    x, y, xq = (torch.as_tensor(a) for a in (rng.standard_normal((2, n, d)), rng.standard_normal((2, n)),
                                               rng.standard_normal((2, 3, d))))
    theta = torch.zeros(2, d, dtype=torch.float64)
    for _ in range(3):
        theta = theta - (gamma / 3) * ((x.transpose(1, 2) @ ((x @ theta[..., None])[..., 0] - y)[..., None])[..., 0]
                                       / n)
    literal = stacked_predict([gamma / 3 * np.eye(d)] * 3, x, y, xq)
    return identity_check("d=4, N=6, 3 layers, γ=0.9: the stacked construction's ŷ vs 3 plain gradient steps of "
                          "size γ/3 from 0", (xq @ theta[..., None])[..., 0].numpy(), literal.numpy())


def check_stacked_loss(scale: float) -> Check:
    family = LinearTaskFamily.subspace(6, 8, 10, rank=3, noise_var=0.2, seed=57)
    gamma, layers = 1.2, 4
    est = estimate_stacked_loss(family, [gamma / layers * np.eye(6)] * layers, int(100_000 * scale), seed=58)
    return interval_check("Σx = I, d=6, N=8, r=3, s²=0.2, 4 layers, γ=1.2: the stacked layers on fresh prompts vs the "
                          "exact 4-step loss", linear_attention.stacked_layers_loss(family, gamma, layers), est)


CHECKS = declare("linear_attention", {
    "one_step": check_one_step,
    "test_loss": check_test_loss,
    "trained_gamma": check_trained_gamma,
    "trained_longer_context": check_trained_longer_context,
    "stacked_is_plain_steps": check_stacked_is_plain_steps,
    "stacked_loss": check_stacked_loss,
})
