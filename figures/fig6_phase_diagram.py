"""Figure 6, when MAML can adapt fast: the best shallow post/pre loss ratio and the gain of the
optimal preconditioner over (d/K, r/d), from the closed forms (Σx = I, σ_w² = 1)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import sympy as sp
from matplotlib.colors import LogNorm

from figures.checkpoint import run_units
from figures.common import Profiles
from figures.reproduction import EXACT, KEY
from theory.preconditioned_maml import GAIN_SYMBOLS, isotropic_gain_symbolic


@dataclass(frozen=True)
class Config(Profiles):
    support: int = 5  # K
    noise_var: float = 0.0  # s²
    n_ratio: int = 60  # grid points along d/K (log-spaced from 0.2 to 100)
    n_rank: int = 50  # grid points along r/d (0.02 to 1)

    FULL: ClassVar[dict] = {"n_ratio": 200, "n_rank": 200}


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "d_over_k": KEY, "r_over_d": KEY,  # the grid (np.logspace: its last bit differs between CPUs)
    "shallow_best_over_pre": EXACT, "preconditioner_gain": EXACT,
}


def _grid(config: Config) -> dict:
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


def units(config: Config, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """One unit, the whole closed-form grid (``seed`` is unused)."""
    return {"grid": partial(_grid, config)}


def assemble(config: Config, seed: int, done: dict[str, dict]) -> dict:
    return done["grid"]


def compute(config: Config, seed: int = 0, progress=None) -> dict:
    """Closed-form ratios on the grid: shallow best / pre, and shallow best / preconditioned best."""
    return assemble(config, seed, run_units(progress, units(config, seed)))


def n_units(config: Config) -> int:
    return 1


def rows(results: dict) -> list[dict]:
    out = []
    for i, r in enumerate(results["r_over_d"]):
        for j, q in enumerate(results["d_over_k"]):
            out.append({"d_over_k": q, "r_over_d": r, "shallow_best_over_pre": results["shallow_ratio"][i][j],
                        "preconditioner_gain": results["gain"][i][j]})
    return out


def plot(results: dict):
    x, y = np.array(results["d_over_k"]), np.array(results["r_over_d"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, key, title, norm, cmap in [
        (axes[0], "shallow_ratio", "(a) best shallow post/pre loss ratio", None, "viridis"),
        (axes[1], "gain", "(b) gain of the optimal preconditioner (shallow best / P* best)", LogNorm(), "magma"),
    ]:
        z = np.array(results[key])
        mesh = ax.pcolormesh(x, y, z, shading="auto", norm=norm, cmap=cmap)
        levels = [0.5, 0.8, 0.9, 0.95] if key == "shallow_ratio" else [1.5, 2, 5, 10]
        cs = ax.contour(x, y, z, levels=levels, colors="white", linewidths=0.8)
        ax.clabel(cs, fontsize=7, fmt="%g")
        fig.colorbar(mesh, ax=ax, label="ratio")
        ax.set(xscale="log", xlabel="d / K (input dimension per support point)", ylabel="r / d (task rank / d)",
               title=title)
    fig.suptitle(f"Closed forms, Σx = I, K = {results['support']}, s² = {results['noise_var']}", fontsize=9)
    fig.tight_layout()
    return fig


def caption(results: dict) -> str:
    z = np.array(results["shallow_ratio"])
    g = np.array(results["gain"])
    return (f"Closed forms (K={results['support']}, s²={results['noise_var']}): the best shallow step keeps "
            f"{z.max():.0%} of the pre-adaptation loss at d/K = {results['d_over_k'][-1]:.0f} "
            f"(whatever r), while the optimal preconditioner gains up to {g.max():.1f}× when r ≪ d.")
