"""verify checks of theory.logistic: the logistic gradient and the deep linear classifier's first-order
step (its implicit preconditioner) against autograd."""
from __future__ import annotations

from simulations.checks.fixtures import random_net
from simulations.checks.rules import Check, declare, identity_check
from simulations.twins.logistic import deep_logistic_first_order_step_autograd, logistic_gradient_autograd
from theory import logistic


def check_logistic_gradient(scale: float) -> Check:
    layers, x, y = random_net([7, 1], seed=24, labels="sign")
    return identity_check("d=7, K=6: −(1/K) Σ y σ(−y wᵀx) x vs autograd",
                          logistic.end_to_end_gradient(layers[0], x, y), logistic_gradient_autograd(layers[0], x, y))


def check_logistic_preconditioner(scale: float) -> Check:
    layers, x, y = random_net([6, 4, 3, 1], seed=25, labels="sign")
    return identity_check("deep linear classifier, depth 3: dW'/dα|₀",
                          logistic.deep_logistic_first_order_step(layers, x, y),
                          deep_logistic_first_order_step_autograd(layers, x, y))


CHECKS = declare("logistic", {
    "gradient": check_logistic_gradient,
    "implicit_preconditioner": check_logistic_preconditioner,
})
