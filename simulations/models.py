"""Linear models as chains of bias-free linear layers: shallow, deep, and LinNet.

Every model here is a ``LinearChain`` f(x) = W_L ⋯ W_1 x (layers[0] = W_1), so its
end-to-end map is one matrix and its function class is {x ↦ Wx : rank W ≤ min width}
(theory.deep_linear): depth and LinNet layers change the parameterisation, not capacity.
"""
from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn

from theory.ground.errors import require_int


class LinearChain(nn.Module):
    """f(x) = W_L ⋯ W_1 x with bias-free layers; ``widths`` = (in, h_1, …, h_{L−1}, out)."""

    def __init__(self, widths: list[int]):
        super().__init__()
        self.widths = [require_int("width", w, 1) for w in widths]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=False) for a, b in pairwise(widths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (…, in) -> (…) for out = 1, else (…, out)
        for layer in self.layers:
            x = layer(x)
        return x.squeeze(-1) if self.widths[-1] == 1 else x

    def end_to_end(self) -> torch.Tensor:
        """W = W_L ⋯ W_1, (out, in)."""
        w = self.layers[0].weight
        for layer in self.layers[1:]:
            w = layer.weight @ w
        return w

    @property
    def head_name(self) -> str:
        """The parameter ANIL adapts: the output layer's weight."""
        return f"layers.{len(self.layers) - 1}.weight"


def shallow_linear(dim: int, out: int = 1, seed: int = 0, dtype=torch.float64) -> LinearChain:
    """f(x) = wᵀx (out = 1): one bias-free layer, PyTorch's default (Kaiming-uniform) init."""
    return deep_linear(dim, depth=1, width=1, out=out, seed=seed, dtype=dtype)


def deep_linear(dim: int, depth: int, width: int, out: int = 1, seed: int = 0,
                dtype=torch.float64) -> LinearChain:
    """f(x) = W_L ⋯ W_1 x with L = depth layers of hidden width ``width`` (default init)."""
    depth = require_int("depth", depth, 1)
    with torch.random.fork_rng(devices=[]):  # reproducible init that leaves the global RNG alone
        torch.manual_seed(seed)
        model = LinearChain([dim] + [width] * (depth - 1) + [out])
    return model.to(dtype)


def add_linear_layers(model: LinearChain, n_layers: int) -> LinearChain:
    """LinNet: insert ``n_layers`` square layers, initialised to the identity, before the output layer.

    The end-to-end map (and the function class) is unchanged at initialisation; only the
    gradient's geometry changes: the new layers act as a meta-learned preconditioner.
    """
    n_layers = require_int("linnet_layers", n_layers, 0)
    h = model.widths[-2]
    widths = model.widths[:-1] + [h] * n_layers + model.widths[-1:]
    out = LinearChain(widths).to(model.layers[0].weight.dtype)
    with torch.no_grad():
        old = list(model.layers)
        for i, layer in enumerate(out.layers):
            if i < len(old) - 1:
                layer.weight.copy_(old[i].weight)
            elif i == len(out.layers) - 1:
                layer.weight.copy_(old[-1].weight)
            else:
                layer.weight.copy_(torch.eye(h))
    return out


def linnet(dim: int, n_layers: int = 2, out: int = 1, seed: int = 0, dtype=torch.float64) -> LinearChain:
    """The shallow model plus ``n_layers`` identity-initialised d×d layers before its output."""
    return add_linear_layers(shallow_linear(dim, out, seed, dtype), n_layers)
