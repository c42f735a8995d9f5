"""verify checks of theory.scalar_deep (figure 2): the sympy depth-2 scalar update against autograd, and
the exact depth-2 meta-objective against one literal functional-MAML step on sampled tasks."""
from __future__ import annotations

import numpy as np
import sympy as sp

from simulations.checks.rules import Check, declare, identity_check, interval_check
from simulations.twins.scalar_deep import depth2_scalar_update_autograd, estimate_depth2_scalar_meta_objective
from theory import scalar_deep

FIGURE2_MINIMUM = (1.83, 0.61, 0.2, 5, 1.0, 1.0)  # (w₁, w₂, α, K, μ, σ²): figure 2's depth-2 minimum


def check_update(scale: float) -> Check:
    rng = np.random.default_rng(26)
    w1, w2, w_tau, alpha = rng.standard_normal(4)
    x = rng.standard_normal(5)  # (K,)
    s_hat, w_tau_sym = sp.symbols("s_hat w_tau", real=True)
    update = sp.lambdify((scalar_deep.W1, scalar_deep.W2, scalar_deep.ALPHA, s_hat, w_tau_sym),
                         scalar_deep.depth2_scalar_update_symbolic(), "math")
    return identity_check("K=5, random (w₁, w₂, w_τ, α): sympy (w₁', w₂') vs autograd",
                          update(w1, w2, alpha, float(np.mean(x**2)), w_tau),
                          depth2_scalar_update_autograd(w1, w2, alpha, x, w_tau))


def check_meta_objective(scale: float) -> Check:
    est = estimate_depth2_scalar_meta_objective(*FIGURE2_MINIMUM, n_tasks=int(200_000 * scale), seed=11)
    return interval_check("d=1, K=5, μ=1, σ²=1, α=0.2 at figure 2's minimum "
                          "(w₁, w₂) = (1.83, 0.61)", scalar_deep.depth2_scalar_meta_objective(*FIGURE2_MINIMUM), est)


CHECKS = declare("scalar_deep", {
    "update": check_update,
    "meta_objective": check_meta_objective,
})
