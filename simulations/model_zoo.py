"""The named models of the experiments: shallow, deep and LinNet, each optionally with KFO.

"linnet" is the shallow model plus LinNet layers, "deep-linnet" the deep model plus them.

``build_model(name, spec, seed)`` returns (model, transform) where transform is None or the
Kronecker-factored meta-optimizer's (params, apply) pair (simulations.kfo). All six have the
same function class, linear maps R^d → R: depth, LinNet layers and KFO change only how the
inner loop moves through it. For classification, "shallow" is logistic regression (LogR).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from simulations.model_names import MODEL_NAMES, parse_models  # noqa: F401  (the names, torch-free; re-exported)
from simulations.models import add_linear_layers, deep_linear, linnet, shallow_linear
from theory.ground.errors import ParameterError


@dataclass(frozen=True)
class ZooSpec:
    """Architecture settings shared by the named models."""

    dim: int  # d, input dimension
    depth: int = 3  # layers of the deep model
    width: int = 64  # hidden width of the deep model
    linnet_layers: int = 2  # identity-initialised layers LinNet adds before the output
    kfo_form: str = "linear"  # "linear", "psd" or "nonlinear" (simulations.kfo)


def build_model(name: str, spec: ZooSpec, seed: int = 0, dtype=torch.float64):
    """(model, GradientTransform or None) for one of MODEL_NAMES."""
    base = name.removesuffix("-kfo") if name != "kfo" else "shallow"
    if base == "shallow":
        model = shallow_linear(spec.dim, seed=seed, dtype=dtype)
    elif base == "deep":
        model = deep_linear(spec.dim, spec.depth, spec.width, seed=seed, dtype=dtype)
    elif base == "linnet":
        model = linnet(spec.dim, spec.linnet_layers, seed=seed, dtype=dtype)
    elif base == "deep-linnet":  # the deep model plus identity-initialised layers before its output
        model = add_linear_layers(deep_linear(spec.dim, spec.depth, spec.width, seed=seed, dtype=dtype),
                                  spec.linnet_layers)
    else:
        raise ParameterError("models", name, f"one of {','.join(MODEL_NAMES)}")
    if not name.endswith("kfo"):
        return model, None
    from simulations.kfo import kfo_transform

    return model, kfo_transform(model, form=spec.kfo_form, dtype=dtype)
