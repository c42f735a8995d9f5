"""Autograd twins of theory.deep_linear: one literal inner step, layer by layer.

A deep linear net f(x) = W_L ⋯ W_1 x is built in torch from the given layers (bottom first,
float64), the per-task loss on (x, y) is differentiated by torch.autograd with respect to the
adapted layers, every adapted layer takes W_l ← W_l − α ∂L/∂W_l, and the new product W' is
returned. Nothing here evaluates the closed forms (the preconditioner P, the exact depth-2
update, the logistic gradient formula) that these functions are compared against. The logistic
loss is here too because the same literal step serves theory.logistic (simulations/twins/logistic.py).

Losses (per task, K points):
    squared:  L = (1/2K) Σ_i ‖W x_i − y_i‖²,   y (K, out) or (K,) when out = 1
    logistic: L = (1/K) Σ_i softplus(−y_i W x_i), y (K,) in {−1, +1}, W of shape (1, in)
"""
from __future__ import annotations

import numpy as np
import torch

from theory.ground.errors import ParameterError

LOSSES = ("squared", "logistic")
ADAPT_CHOICES = ("all", "head", "bottom")


def literal_layer_step(layers, x, y, alpha, loss: str = "squared", adapt: str = "all") -> torch.Tensor:
    """End-to-end map W' = Π_l (W_l − α ∂L/∂W_l) after one literal gradient step, (out, in) float64.

    ``adapt`` picks the layers that step: "all", "head" (only W_L, as in ANIL) or "bottom" (only W_1);
    the others stay fixed. ``alpha`` may be a float or a float64 tensor; as a tensor that requires
    grad, W' is differentiable in α (the layer gradients are evaluated at the given layers and are
    constants in α), so d W'/dα at α = 0 is the first-order step.
    """
    mats = _as_layers(layers)
    chosen = _adapted_indices(len(mats), adapt)
    x, y = _as_data(x, y, mats, loss)
    params = [m.clone().requires_grad_(True) for m in mats]
    value = _loss(_product(params), x, y, loss)
    grads = torch.autograd.grad(value, [params[i] for i in chosen])
    alpha = torch.as_tensor(alpha, dtype=torch.float64)
    stepped = list(mats)
    for i, g in zip(chosen, grads):
        stepped[i] = mats[i] - alpha * g  # (h_l, h_{l-1})
    return _product(stepped)  # (out, in)


def first_order_change(layers, x, y, loss: str = "squared", adapt: str = "all") -> np.ndarray:
    """Twin of theory.deep_linear.implicit_preconditioner: dW'/dα at α = 0 of the literal step, (out, in).

    By reverse-mode autograd through ``literal_layer_step``; the closed form is −unvec(P vec G).
    """
    zero = torch.zeros((), dtype=torch.float64)
    return torch.autograd.functional.jacobian(
        lambda a: literal_layer_step(layers, x, y, a, loss=loss, adapt=adapt), zero).numpy()


def first_order_change_central(layers, x, y, loss: str = "squared", adapt: str = "all",
                               h: float = 1e-5) -> np.ndarray:
    """dW'/dα at α = 0 by a central difference (W'(h) − W'(−h)) / 2h: error O(h²) + O(eps/h)."""
    ahead = literal_layer_step(layers, x, y, h, loss=loss, adapt=adapt)
    behind = literal_layer_step(layers, x, y, -h, loss=loss, adapt=adapt)
    return (ahead - behind).numpy() / (2 * h)


def layer_gradients_autograd(layers, x, y, loss: str = "squared") -> list[torch.Tensor]:
    """Per-layer gradients ∂L/∂W_l by torch.autograd, each of the shape of W_l (float64)."""
    mats = _as_layers(layers)
    x, y = _as_data(x, y, mats, loss)
    params = [m.clone().requires_grad_(True) for m in mats]
    return list(torch.autograd.grad(_loss(_product(params), x, y, loss), params))


def end_to_end_gradient_autograd(w, x, y, loss: str = "squared") -> torch.Tensor:
    """End-to-end gradient G = ∂L/∂W by torch.autograd, (out, in) float64."""
    (w,) = _as_layers([w])
    x, y = _as_data(x, y, [w], loss)
    w = w.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(_loss(w, x, y, loss), [w])
    return grad


def _loss(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The per-task loss of the end-to-end map ``w`` (out, in) on x (K, in) and y (module doc)."""
    pred = x @ w.T  # (K, out)
    if loss == "squared":
        return 0.5 * ((pred - y) ** 2).sum(dim=1).mean()
    z = -y * pred[:, 0]  # logistic, out = 1: log(1 + e^z) exactly (F.softplus is linear above z = 20, where its
    return torch.logaddexp(torch.zeros_like(z), z).mean()  # slope 1 differs from σ(z) by e^−z: 2e-9 at z = 20)


def _product(mats: list[torch.Tensor]) -> torch.Tensor:
    w = mats[0]  # (h_1, in)
    for layer in mats[1:]:
        w = layer @ w  # (h_l, in)
    return w


def _as_layers(layers) -> list[torch.Tensor]:
    if isinstance(layers, torch.Tensor) or len(layers) < 1:
        raise ParameterError("layers", layers, "a non-empty list of 2-D arrays (depth >= 1), bottom first")
    mats = [torch.as_tensor(m, dtype=torch.float64).detach() for m in layers]
    for i, m in enumerate(mats):
        if m.ndim != 2 or (i > 0 and m.shape[1] != mats[i - 1].shape[0]):
            raise ParameterError(f"layers[{i}]", tuple(m.shape), "a 2-D array chaining with the layer below")
    return mats


def _adapted_indices(depth: int, adapt: str) -> list[int]:
    if adapt not in ADAPT_CHOICES:
        raise ParameterError("adapt", adapt, "one of 'all', 'head' (only W_L) or 'bottom' (only W_1)")
    return {"all": list(range(depth)), "head": [depth - 1], "bottom": [0]}[adapt]


def _as_data(x, y, mats: list[torch.Tensor], loss: str) -> tuple[torch.Tensor, torch.Tensor]:
    """x (K, in) and y: (K, out) for the squared loss, (K,) of ±1 for the logistic loss."""
    if loss not in LOSSES:
        raise ParameterError("loss", loss, "'squared' or 'logistic'")
    out, inp = mats[-1].shape[0], mats[0].shape[1]
    x = torch.as_tensor(x, dtype=torch.float64)
    if x.ndim != 2 or x.shape[1] != inp:
        raise ParameterError("x", tuple(x.shape), f"shape (K, {inp})")
    y = torch.as_tensor(y, dtype=torch.float64)
    if loss == "logistic":
        if out != 1:
            raise ParameterError("layers", f"out = {out}", "out = 1 for the logistic loss")
        if y.shape != (x.shape[0],):
            raise ParameterError("y", tuple(y.shape), f"shape ({x.shape[0]},) of ±1 labels")
        return x, y
    y = y[:, None] if y.ndim == 1 else y
    if y.shape != (x.shape[0], out):
        raise ParameterError("y", tuple(y.shape), f"shape ({x.shape[0]}, {out}) = (K, out)")
    return x, y
