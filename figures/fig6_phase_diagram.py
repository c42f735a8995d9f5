"""Figure 6, when MAML can adapt fast: the best shallow post/pre loss ratio and the gain of the
optimal preconditioner over (d/K, r/d), from the closed forms (Σx = I, σ_w² = 1)."""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from figures.common import Profiles
from figures.reproduction import EXACT, KEY
from simulations.experiments import phase_diagram as experiment


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.phase_diagram.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"n_ratio": 200, "n_rank": 200}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "d_over_k": KEY, "r_over_d": KEY,  # the grid (np.logspace: its last bit differs between CPUs)
    "shallow_best_over_pre": EXACT, "preconditioner_gain": EXACT,
}


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
