"""Figure 1, the failure mode: post-adaptation loss against meta-training iterations.

(a) linear regression, shallow vs deep vs LinNet vs KFO, with the pre-adaptation loss and the
theory bounds (best shallow step, optimal preconditioner); (b, c) binary classification, logistic
regression vs logistic regression + LinNet vs + KFO. Mean and 95% interval over seeds.
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.common import COLORS, Profiles, draw_reference_losses
from figures.reproduction import EXACT, KEY, TRAINED, spread
from simulations.experiments import failure_mode as experiment
from simulations.statistics import mean_ci95


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.failure_mode.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"iterations": 3000, "eval_every": 100, "eval_tasks": 10_000, "seeds": 10}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "model": KEY, "iteration": KEY, "metric": KEY,
    "mean": TRAINED, "ci95": spread("mean"),  # float64 meta-training (Adam), then evaluation on seeded tasks
    "seeds": EXACT,
}


def rows(results: dict) -> list[dict]:
    """Long-format CSV rows: panel, model, iteration, mean and 95% CI over seeds."""
    out = []
    for (panel, model), runs in _group(results["runs"]).items():
        for j, it in enumerate(runs[0]["iteration"]):
            for metric in [m for m in ("post_loss", "pre_loss", "post_accuracy") if m in runs[0]]:
                m, ci = mean_ci95([r[metric][j] for r in runs])
                out.append({"panel": panel, "model": model, "iteration": it, "metric": metric,
                            "mean": m, "ci95": ci, "seeds": len(runs)})
    for key, value in results["theory"].items():
        out.append({"panel": "regression", "model": "theory", "iteration": "", "metric": key,
                    "mean": value, "ci95": 0.0, "seeds": 0})
    return out


def _group(runs: list[dict]) -> dict:
    groups: dict = {}
    for r in runs:
        groups.setdefault((r["panel"], r["model"]), []).append(r)
    return groups


def plot(results: dict):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    groups, theory = _group(results["runs"]), results["theory"]
    for (panel, model), runs in groups.items():
        it = np.array(runs[0]["iteration"])
        targets = [(axes[0], "post_loss")] if panel == "regression" else [(axes[1], "post_loss"),
                                                                          (axes[2], "post_accuracy")]
        for ax, metric in targets:
            stats = np.array([mean_ci95([r[metric][j] for r in runs]) for j in range(len(it))])
            ax.plot(it, stats[:, 0], color=COLORS[model], label=model)
            ax.fill_between(it, stats[:, 0] - stats[:, 1], stats[:, 0] + stats[:, 1], color=COLORS[model],
                            alpha=0.2)
    ax = axes[0]
    draw_reference_losses(ax, theory)
    ax.set(title=f"(a) linear regression, α = α* = {theory['alpha']:.3f}", xlabel="meta-training iteration",
           ylabel="post-adaptation query loss (½ MSE)")
    axes[1].set(title="(b) binary classification", xlabel="meta-training iteration",
                ylabel="post-adaptation query loss (logistic)")
    axes[2].set(title="(c) binary classification: accuracy", xlabel="meta-training iteration",
                ylabel="post-adaptation query accuracy")
    axes[0].set_ylim(0, 1.45)
    axes[0].legend(fontsize=8, ncol=2, loc="upper right")
    for ax in axes[1:]:
        ax.legend(fontsize=8, loc="center right")
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def caption(results: dict) -> str:
    """One line with the measured numbers, for the README."""
    groups = _group(results["runs"])
    final = {m: mean_ci95([r["post_loss"][-1] for r in runs]) for (p, m), runs in groups.items()}
    acc = {m: mean_ci95([r["post_accuracy"][-1] for r in runs]) for (p, m), runs in groups.items()
           if p == "classification"}
    t = results["theory"]
    return (f"Regression (d={t['dim']}, K={t['support']}, r={t['rank']}): final post-adaptation loss "
            f"shallow {final['shallow'][0]:.3f}, deep {final['deep'][0]:.3f}, LinNet {final['linnet'][0]:.3f}, "
            f"KFO {final['kfo'][0]:.3f} (theory: best shallow step "
            f"{t['shallow_best_post_loss']:.3f}, optimal preconditioner {t['preconditioned_best_post_loss']:.3f},"
            f" pre-adaptation {t['pre_adaptation_loss']:.3f}); classification accuracy after one step: "
            f"LogR {acc['logr'][0]:.1%}, LogR+LinNet {acc['logr+linnet'][0]:.1%}, LogR+KFO {acc['logr+kfo'][0]:.1%}.")
