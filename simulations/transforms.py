"""Gradient transforms U for the inner step θ' = θ − α U(∇L): meta-learned preconditioners.

Each is a ``simulations.maml.GradientTransform`` (initial parameters, pure map (grads, params) ->
directions), the form ``simulations.maml.adapt`` takes. An untrained transform is the identity.
"""
from __future__ import annotations

import torch

from simulations.maml import GradientTransform, Params


def scalar_step(dtype=torch.float64) -> GradientTransform:
    """U(g) = exp(s) g for every adapted parameter: a meta-learned step size α·exp(s), s = 0 initially."""
    params = {"log_scale": torch.zeros((), dtype=dtype, requires_grad=True)}

    def apply(grads: Params, p: Params) -> Params:
        return {n: torch.exp(p["log_scale"]) * g for n, g in grads.items()}

    return GradientTransform(params, apply)


def matrix_preconditioner(name: str, dim: int, dtype=torch.float64) -> GradientTransform:
    """U(g) = P g for the (1, d) weight ``name`` of a shallow model (g as a row: g Pᵀ); P = I initially.

    This is the full-matrix preconditioned step of theory.preconditioned_maml.
    """
    params = {"precond": torch.eye(dim, dtype=dtype, requires_grad=True)}

    def apply(grads: Params, p: Params) -> Params:
        return {n: (g @ p["precond"].T if n == name else g) for n, g in grads.items()}  # (1, d)

    return GradientTransform(params, apply)


def diagonal_preconditioner(name: str, dim: int, dtype=torch.float64) -> GradientTransform:
    """U(g) = diag(p) g for the (1, d) weight ``name`` of a shallow model: Meta-SGD's per-parameter step sizes
    (Li et al. 2017), α·p_i for coordinate i; p = 1 initially. theory.meta_sgd is its closed form."""
    params = {"step_sizes": torch.ones(dim, dtype=dtype, requires_grad=True)}

    def apply(grads: Params, p: Params) -> Params:
        return {n: (g * p["step_sizes"] if n == name else g) for n, g in grads.items()}  # (1, d) ∘ (d,)

    return GradientTransform(params, apply)
