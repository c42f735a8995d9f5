"""The explorer's panel 3: how meta-training gets there for the setting, ``paper_repro.py dynamics``'s own numbers.

For the app's setting (explore's family options, α and k), ``dynamics_panel`` runs the dynamics command's
``run`` (simulations.experiments.dynamics, theory.dynamics) for shallow MAML (θ₀ = μ + u, u a seeded unit
direction: the exact gradient-flow curve L(t), t = η·n, beside joint training from the same start) and for ANIL
at width min(h, d) (W(0) along the task structure's eigenvectors, v₀ = 0: every mode a logistic curve, with its
switch-on time), each with the command line whose ``--json`` prints the same curve, or the command line's one-line
reason where the setting is outside what the dynamics cover (ANIL needs μ = 0 and one inner step). Figures'
Searches run it in a child process (``Searches("dynamics")``), as the searched half of panel 1.
"""
from __future__ import annotations

import shlex

import matplotlib.pyplot as plt
import numpy as np

from figures import explorer_compute as ex
from simulations.experiments.dynamics import DynamicsConfig, run
from simulations.experiments.explore import ExploreConfig
from theory.ground.errors import ParameterError
from theory.ground.options import flags

FAMILY_FIELDS = ("dim", "support", "query", "rank", "task_var", "mean_norm", "task_spectrum", "input_spectrum",
                 "noise_var", "seed")  # explore's family options, which the dynamics command takes as they are
MODELS = ("shallow", "anil")  # depth 2's flow (many numerical starts) is the dynamics command's, not the app's


def dynamics_config(config: ExploreConfig, model: str) -> DynamicsConfig:
    """The setting as ``paper_repro.py dynamics --model MODEL`` (ParameterError where the command refuses it)."""
    family = {name: getattr(config, name) for name in FAMILY_FIELDS}
    if model == "shallow":
        return DynamicsConfig(model="shallow", alpha=config.alpha, steps=config.steps, **family)
    return DynamicsConfig(model="anil", alpha=config.alpha, steps=config.steps, width=min(config.width, config.dim),
                          **family)


def dynamics_command(dynamics: DynamicsConfig) -> str:
    """``python paper_repro.py dynamics --model M … --json``: the options that differ from the defaults."""
    flag, default = flags(DynamicsConfig), DynamicsConfig()
    argv = ["python", "paper_repro.py", "dynamics", "--model", dynamics.model]
    for name in (*FAMILY_FIELDS, "alpha", "steps", "width"):
        value = getattr(dynamics, name)
        if value != getattr(default, name):
            text = ex.option_text(value)
            argv += [f"{flag[name]}={text}"] if isinstance(value, tuple) else [flag[name], text]
    return shlex.join([*argv, "--json"])


def dynamics_panel(config: ExploreConfig) -> dict:
    """{model: {"command", and run's report (times, loss, limit, method, …)} or {"command"?, "note"}}."""
    out = {}
    for model in MODELS:
        try:
            dynamics = dynamics_config(config, model)
        except ParameterError as err:
            out[model] = {"note": ex.error_line(err, DynamicsConfig)}
            continue
        try:
            out[model] = {"command": dynamics_command(dynamics), **run(dynamics)}
        except ParameterError as err:
            out[model] = {"command": dynamics_command(dynamics),
                          "note": ex.error_line(err, DynamicsConfig)}
    return out


def dynamics_figure(panel: dict):
    """Panel 3: L(t) of shallow MAML and joint training from θ₀, and of ANIL, against gradient-flow time."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    shallow, anil = panel.get("shallow", {}), panel.get("anil", {})
    if "loss" in shallow:
        t = np.maximum(shallow["times"], 1e-3)
        ax.plot(t, shallow["loss"], color="tab:blue", label=f"shallow MAML, post-adaptation ({shallow['method']})")
        ax.axhline(shallow["limit"], color="tab:blue", linestyle=":", linewidth=1)
        ax.plot(t, shallow["joint_training"]["loss"], color="0.5", linewidth=1,
                label="joint training (ERM) from θ₀, its pre-adaptation loss")
    if "loss" in anil:
        t = np.maximum(anil["times"], 1e-3)
        ax.plot(t, anil["loss"], color="tab:purple", label=f"ANIL, width {anil['width']} ({anil['method']})")
        if np.isfinite(anil["limit"]):
            ax.axhline(anil["limit"], color="tab:purple", linestyle=":", linewidth=1)
        for switch in anil.get("switch_on_times", []):
            ax.axvline(max(switch, 1e-3), color="tab:purple", linewidth=0.6, alpha=0.5)
    ax.set(xscale="log", xlabel="gradient-flow time t = η·n", ylabel="expected loss",
           title="Meta-training: the exact gradient flow (limits dotted; ANIL's switch-on times)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig
