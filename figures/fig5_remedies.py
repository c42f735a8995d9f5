"""Figure 5, the remedies: shallow and deep models × {plain, + linear layers (LinNet), + KFO},
on regression and classification; post-adaptation loss (and accuracy), mean and 95% interval
over seeds, with the regression theory lines (best shallow step, optimal preconditioner)."""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.common import Profiles, draw_reference_losses
from figures.reproduction import EXACT, KEY, TRAINED, spread
from simulations.experiments import remedies as experiment
from simulations.experiments.remedies import BASES, REMEDIES
from simulations.statistics import mean_ci95

COLORS = {"plain": "#7f7f7f", "+ linear layers": "#1f77b4", "+ KFO": "#2ca02c"}


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.remedies.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"iterations": 3000, "eval_tasks": 10_000, "seeds": 10}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "task": KEY, "base": KEY, "remedy": KEY, "metric": KEY,
    "mean": TRAINED, "ci95": spread("mean"),  # float64 meta-training (Adam), then evaluation on seeded tasks
    "seeds": EXACT, "diverged_seeds": EXACT,
}


def summary(results: dict) -> dict:
    """(task, base, remedy) -> {metric: (mean, ci95, seeds)}, over the seeds that did not diverge."""
    groups: dict = {}
    for r in results["runs"]:
        groups.setdefault((r["task"], r["base"], r["remedy"]), []).append(r)
    out = {}
    for key, runs in groups.items():
        ok = [r for r in runs if "diverged" not in r]
        metrics = [m for m in ("pre_loss", "post_loss", "post_accuracy") if ok and m in ok[0]]
        out[key] = {m: (*mean_ci95([r[m] for r in ok]), len(ok)) for m in metrics}
        out[key]["diverged"] = len(runs) - len(ok)
    return out


def rows(results: dict) -> list[dict]:
    out = []
    for (task, base, remedy), stats in summary(results).items():
        for metric, value in stats.items():
            if metric != "diverged":
                out.append({"task": task, "base": base, "remedy": remedy, "metric": metric, "mean": value[0],
                            "ci95": value[1], "seeds": value[2], "diverged_seeds": stats["diverged"]})
    for key, value in results["theory"].items():
        out.append({"task": "regression", "base": "theory", "remedy": "", "metric": key, "mean": value,
                    "ci95": 0.0, "seeds": 0, "diverged_seeds": 0})
    return out


def plot(results: dict):
    stats, theory = summary(results), results["theory"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    panels = [("regression", "post_loss", "(a) regression: post-adaptation loss (½ MSE)"),
              ("classification", "post_loss", "(b) classification: post-adaptation loss (logistic)"),
              ("classification", "post_accuracy", "(c) classification: post-adaptation accuracy")]
    width = 0.25
    for ax, (task, metric, title) in zip(axes, panels):
        for j, remedy in enumerate(REMEDIES):
            means = [stats[(task, b, remedy)].get(metric, (np.nan, 0, 0))[0] for b in BASES]
            errs = [stats[(task, b, remedy)].get(metric, (np.nan, 0, 0))[1] for b in BASES]
            ax.bar(np.arange(len(BASES)) + (j - 1) * width, means, width, yerr=errs, capsize=3,
                   color=COLORS[remedy], label=remedy)
        ax.set_xticks(range(len(BASES)), ["shallow (LogR)" if task == "classification" and b == "shallow" else b
                                          for b in BASES])
        ax.set(title=title)
        ax.grid(alpha=0.3, axis="y")
    draw_reference_losses(axes[0], theory)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[0].set_ylim(0, theory["pre_adaptation_loss"] * 1.45)
    axes[2].set_ylim(0.5, 1.0)
    axes[1].legend(fontsize=7)
    fig.suptitle(f"d = {theory['dim']}, K = {theory['support']}, r = {theory['rank']}; mean ± 95% CI over seeds",
                 fontsize=9)
    fig.tight_layout()
    return fig


def caption(results: dict) -> str:
    stats = summary(results)

    def v(task, base, remedy, metric="post_loss"):
        return stats[(task, base, remedy)].get(metric, (float("nan"),))[0]

    reg = ", ".join(f"{b} {v('regression', b, 'plain'):.3f} → +layers {v('regression', b, '+ linear layers'):.3f}"
                    f" / +KFO {v('regression', b, '+ KFO'):.3f}" for b in BASES)
    acc = ", ".join(f"{b} {v('classification', b, 'plain', 'post_accuracy'):.1%} → "
                    f"{v('classification', b, '+ linear layers', 'post_accuracy'):.1%} / "
                    f"{v('classification', b, '+ KFO', 'post_accuracy'):.1%}" for b in BASES)
    t = results["theory"]
    bound = t["preconditioned_best_post_loss"]
    note = (" The plain deep model already sits at the optimal-preconditioner bound, which no linear"
            " preconditioned step can beat, so here the remedies matter for the shallow model."
            if v("regression", "deep", "plain") < 1.05 * bound else "")
    return (f"Regression post-adaptation loss: {reg} (theory: best shallow step {t['shallow_best_post_loss']:.3f},"
            f" optimal preconditioner {bound:.3f}); classification accuracy: {acc}.{note}")
