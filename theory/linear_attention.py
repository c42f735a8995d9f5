"""In-context learning by linear self-attention: one meta-learned preconditioned gradient step.

A prompt holds N context pairs (x_i, y_i = w_τᵀx_i + ε_i) of one task and a query x_q; with x ~ N(0, Λ)
(Λ = the family's Σx), w_τ ~ N(μ, Σw) and noise s², N = the family's support size K. The one-layer linear
self-attention model trained on such prompts (Ahn et al. 2023; Mahankali et al. 2023; Zhang, Frei & Bartlett
2024) predicts, in the form gradient flow keeps from its usual initialisation,
    ŷ = x_qᵀ Γ (1/N) Σ_i y_i x_i = x_qᵀ (θ₀ − Γ ∇L̂(θ₀)),   θ₀ = 0,   L̂(θ) = (1/2N) Σ_i (θᵀx_i − y_i)²:
exactly one preconditioned gradient step from θ₀ = 0 with αP = Γ (derived here). So the test loss of any Γ at
any context length M is theory.preconditioned_maml's exact loss at θ = 0, P = Γ, α = 1, K = M:
    L(Γ; M) = ½[tr(SC) − 2tr(SΓSC) + tr(ΓᵀSΓ D_M)] + ½s²,   D_M = (1 + 1/M) SCS + ((tr(SC) + s²)/M) S,
S = Λ, C = μμᵀ + Σw (the error second moment at θ = 0), and the meta-learned Γ is its minimiser at the training
length N (the same algebra as the optimal preconditioner, with C at θ = 0):
    Γ* = C (c₁ S C + c₂ I)⁻¹,   c₁ = 1 + 1/N,   c₂ = (tr(SC) + s²)/N;
for Σw = I, μ = 0: Γ* = [(1 + 1/N) Λ + ((tr Λ + s²)/N) I]⁻¹, and for Λ = I as well Γ* = N/(N + d + 1 + s²)·I (with
s² = 0 the shallow model's α* = K/(K + d + 1)). A model trained at N and tested at M ≠ N has the exact loss
L(Γ*_N; M) (derived here): too long a context over-shoots no more than too short a one under-shoots only when N is
the length it is tested at. Stacked layers: the construction of von Oswald et al. (2023), in which layer ℓ
updates every token's label slot by −x_jᵀΓ_ℓ (1/N)Σ_i r_i x_i, takes one preconditioned step per layer on the same
context, so L layers with Γ_ℓ = (γ/L) I are L plain steps of size γ/L from 0, whose exact loss is
theory.shallow_maml's k-step loss (Σx = I with finite N, any Σx with N = ∞, any Σx with L ≤ 3); a trained L-layer
model need not be this construction (only simulation answers there).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from theory.ground.errors import ParameterError, require_int, require_real
from theory.preconditioned_maml import preconditioned_post_adaptation_loss
from theory.shallow_maml import post_adaptation_loss
from theory.task_family import LinearTaskFamily
from theory.wishart_moments import inverse_support


def at_context(family: LinearTaskFamily, context: int | float | None) -> LinearTaskFamily:
    """The family with context length M (its support size) in place of N; the family itself for None."""
    if context is None:
        return family
    return dataclasses.replace(family, support=context)


def icl_loss(family: LinearTaskFamily, gamma, context: int | float | None = None) -> float:
    """L(Γ; M): the expected query loss of ŷ = x_qᵀΓ(1/M)Σy_i x_i on prompts of M context pairs (module doc)."""
    gamma = _check_gamma(family, gamma)
    fam = at_context(family, context)
    return preconditioned_post_adaptation_loss(fam, np.zeros(family.dim), gamma, 1.0)


def optimal_gamma(family: LinearTaskFamily) -> np.ndarray:
    """Γ* = C(c₁SC + c₂I)⁻¹ at the family's context length N, C = μμᵀ + Σw (module doc); at N = ∞ the limit
    S^{-1/2} Π S^{-1/2}, Π the projector on the range of S^{1/2}CS^{1/2}."""
    s, c = family.input_cov, family.error_second_moment(np.zeros(family.dim))
    inv = inverse_support(family.support)
    if inv == 0:
        vals, vecs = np.linalg.eigh(s)
        half, inv_half = (vecs * np.sqrt(vals)) @ vecs.T, (vecs / np.sqrt(vals)) @ vecs.T
        lam, v = np.linalg.eigh(half @ c @ half)
        kept = v[:, lam > 1e-12 * max(lam.max(), 1e-300)]
        return inv_half @ kept @ kept.T @ inv_half
    c2 = (np.trace(s @ c) + family.noise_var) * inv
    return c @ np.linalg.inv((1 + inv) * s @ c + c2 * np.eye(family.dim))


def optimal_icl_loss(family: LinearTaskFamily, context: int | float | None = None) -> float:
    """L(Γ*_N; M): the model meta-trained at the family's N, tested at context length M (N when None)."""
    return icl_loss(family, optimal_gamma(family), context)


def isotropic_gamma(dim: int, context: int, noise_var: float = 0.0, task_var: float = 1.0) -> float:
    """γ* with Γ* = γ*I for Λ = I, Σw = vI, μ = 0: v/((1 + 1/N)v + (dv + s²)/N) = Nv/((N + 1 + d)v + s²)."""
    dim, context = require_int("dim", dim, 1), require_int("context", context, 1)
    v, s2 = require_real("task_var", task_var, 0.0, strict=True), require_real("noise_var", noise_var, 0.0)
    return context * v / ((context + 1 + dim) * v + s2)


def stacked_layers_loss(family: LinearTaskFamily, gamma: float, layers: int,
                        context: int | float | None = None) -> float:
    """The loss of L stacked layers that each take one step Γ_ℓ = (γ/L)I on the context (module doc): L plain
    steps of size γ/L from θ = 0, theory.shallow_maml's exact k-step loss (NoClosedForm where it has none)."""
    layers = require_int("layers", layers, 1)
    gamma = require_real("gamma", gamma)
    return post_adaptation_loss(at_context(family, context), np.zeros(family.dim), gamma / layers, layers)


def _check_gamma(family: LinearTaskFamily, gamma) -> np.ndarray:
    g = np.asarray(gamma, float)
    if g.ndim == 0:
        g = g * np.eye(family.dim)
    if g.shape != (family.dim, family.dim) or not np.all(np.isfinite(g)):
        raise ParameterError("gamma", g.shape, f"a finite scalar or ({family.dim}, {family.dim}) matrix")
    return g
