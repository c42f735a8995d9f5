"""Autograd twins of theory.logistic: the logistic loss differentiated by torch, and the literal
layer-wise step of a deep linear classifier (theory.deep_linear's twin with the logistic loss).

    L(w) = (1/K) Σ_i softplus(−y_i wᵀx_i),  y_i ∈ {−1, +1}
"""
from __future__ import annotations

import numpy as np

from simulations.twins.deep_linear import end_to_end_gradient_autograd, first_order_change


def logistic_gradient_autograd(w, x, y) -> np.ndarray:
    """Twin of theory.logistic.end_to_end_gradient: ∂L/∂W for W (1, d) by torch.autograd, (1, d) float64."""
    return end_to_end_gradient_autograd(w, x, y, loss="logistic").numpy()


def deep_logistic_first_order_step_autograd(layers, x, y, adapt: str = "all") -> np.ndarray:
    """Twin of theory.logistic.deep_logistic_first_order_step: dW'/dα at α = 0 of the literal step, (1, d)."""
    return first_order_change(layers, x, y, loss="logistic", adapt=adapt)
