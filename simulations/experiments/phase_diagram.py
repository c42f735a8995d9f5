"""Figure 6's numbers: closed-form ratios on a (d/K, r/d) grid: the best shallow step over the pre-adaptation
loss, and the best shallow step over the optimal-preconditioner loss.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import sympy as sp

from theory.preconditioned_maml import GAIN_SYMBOLS, isotropic_gain_symbolic


@dataclass(frozen=True)
class Settings:
    """Figure 6's setting: the grid and the family's K and noise."""

    support: int = 5  # K
    noise_var: float = 0.0  # s²
    n_ratio: int = 60  # grid points along d/K (log-spaced from 0.2 to 100)
    n_rank: int = 50  # grid points along r/d (0.02 to 1)


def _grid(config: Settings) -> dict:
    """Unit: closed-form ratios on the grid: shallow best / pre, and shallow best / preconditioned best."""
    exprs = isotropic_gain_symbolic()
    args = GAIN_SYMBOLS  # (d, K, r, σ_w², s²)
    shallow_ratio = sp.lambdify(args, exprs["shallow"] / exprs["pre"], "numpy")
    gain = sp.lambdify(args, exprs["ratio"], "numpy")
    d_over_k = np.logspace(np.log10(0.2), 2, config.n_ratio)
    r_over_d = np.linspace(0.02, 1.0, config.n_rank)
    dd, rr = np.meshgrid(d_over_k * config.support, r_over_d, indexing="xy")  # (n_rank, n_ratio)
    rank = np.maximum(rr * dd, 1e-9)  # continuous r: the formulas are rational in r
    values = (dd, config.support, rank, 1.0, config.noise_var)
    return {"d_over_k": d_over_k.tolist(), "r_over_d": r_over_d.tolist(),
            "shallow_ratio": np.broadcast_to(shallow_ratio(*values), dd.shape).tolist(),
            "gain": np.broadcast_to(gain(*values), dd.shape).tolist(), "support": config.support,
            "noise_var": config.noise_var}


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """One unit, the whole closed-form grid (``seed`` is unused)."""
    return {"grid": partial(_grid, config)}


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    return done["grid"]
