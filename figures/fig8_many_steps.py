"""Figure 8, how many plain steps make one preconditioned step.

Subspace regression tasks (Σx = I, Σw = σ²UUᵀ of rank r ≪ d, label noise s²). (a) The shallow
model's best post-adaptation loss after k = 1 … k_max plain inner steps on the same support set,
each k at its own optimal step α*_k (theory.shallow_maml, exact for every k through the Wishart
moment recursion), against the best single preconditioned step θ − αP*∇L (theory.preconditioned_maml)
and the Bayes floor, the loss of the posterior-mean estimator no adaptation rule can beat
(theory.bayes_floor), for a few d/K. Points: the shallow model meta-trained with k-step MAML at
α*_k (θ learned), evaluated on fresh tasks (mean and 95% interval over seeds). (b) The number of
plain steps the shallow model needs to match one optimally preconditioned step, against d/K.
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FormatStrFormatter, NullFormatter

from figures.common import REFERENCE_LINEWIDTH, REFERENCE_STYLE, Profiles
from figures.reproduction import EXACT, KEY, TRAINED, spread
from simulations.experiments import many_steps as experiment
from simulations.statistics import mean_ci95

CURVE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.many_steps.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"k_max": 100, "iterations": 1500, "eval_tasks": 10_000, "seeds": 5}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "dim": KEY, "steps": KEY, "kind": KEY,
    "value": TRAINED, "ci95": spread("value"),  # closed forms, the Bayes floor's seeded Monte-Carlo, meta-trained runs
    "alpha": EXACT,
}


def summarize(results: dict) -> list[dict]:
    """Meta-trained points: mean and 95% interval over seeds per (d, k), with the closed form beside."""
    out = []
    for t in results["theory"]:
        for k in sorted({r["steps"] for r in results["runs"]}):
            runs = [r for r in results["runs"] if r["dim"] == t["dim"] and r["steps"] == k]
            values = [r["post_loss"] for r in runs if r["post_loss"] is not None]
            mean, ci = mean_ci95(values) if values else (None, None)
            out.append({"dim": t["dim"], "steps": k, "post_loss": mean, "ci95": ci,
                        "theory": t["best_k_step"][k - 1], "diverged": len(runs) - len(values)})
    return out


def rows(results: dict) -> list[dict]:
    out = []
    for t in results["theory"]:
        for k, (value, alpha) in enumerate(zip(t["best_k_step"], t["optimal_alpha"]), 1):
            out.append({"panel": "a", "dim": t["dim"], "steps": k, "kind": "theory_best_k_step", "value": value,
                        "ci95": "", "alpha": alpha})
        for kind in ("preconditioned_best_post_loss", "bayes_optimal_loss", "pre_adaptation_loss"):
            ci = t["bayes_ci95"] if kind == "bayes_optimal_loss" else ""
            out.append({"panel": "a", "dim": t["dim"], "steps": "", "kind": kind, "value": t[kind], "ci95": ci,
                        "alpha": ""})
    for p in summarize(results):
        out.append({"panel": "a", "dim": p["dim"], "steps": p["steps"], "kind": "meta_trained",
                    "value": "" if p["post_loss"] is None else p["post_loss"],
                    "ci95": "" if p["ci95"] is None else p["ci95"], "alpha": ""})
    for r in results["ratio_steps"]:
        out.append({"panel": "b", "dim": r["dim"], "steps": "" if r["steps_to_match"] is None else r["steps_to_match"],
                    "kind": "steps_to_match", "value": r["d_over_k"], "ci95": "", "alpha": ""})
    return out


def plot(results: dict):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(13, 6.2), gridspec_kw={"width_ratios": [1.5, 1]})
    steps = np.arange(1, results["k_max"] + 1)
    points = summarize(results)
    levels = [t["preconditioned_best_post_loss"] for t in results["theory"]]
    shared = max(levels) - min(levels) <= 1e-9 * max(levels)  # Σx = I: P* finds the r-dim subspace for every d
    for color, t in zip(CURVE_COLORS, results["theory"]):
        label = f"d/K = {t['d_over_k']:g}"
        ax.plot(steps, t["best_k_step"], color=color, lw=1.6, label=f"{label}: best k plain steps (theory)")
        if not shared:
            ax.axhline(t["preconditioned_best_post_loss"], color=color, lw=REFERENCE_LINEWIDTH, linestyle="-.")
        if t["steps_to_match"] is not None:
            k = t["steps_to_match"]
            ax.plot(k, t["best_k_step"][k - 1], "o", mfc="none", color=color, ms=9)
        mine = [p for p in points if p["dim"] == t["dim"] and p["post_loss"] is not None]
        ax.errorbar([p["steps"] for p in mine], [p["post_loss"] for p in mine], yerr=[p["ci95"] for p in mine],
                    fmt="s", color=color, ms=5, capsize=3)
    first = results["theory"][0]
    ax.axhline(first["pre_adaptation_loss"], lw=REFERENCE_LINEWIDTH, **REFERENCE_STYLE["pre_adaptation_loss"])
    floor = f"{first['bayes_optimal_loss']:.3f}" + (f" ± {first['bayes_ci95']:.3f}, Monte-Carlo" if first["bayes_ci95"]
                                                    else f", {first['bayes_method']}")
    ax.axhline(first["bayes_optimal_loss"], color="black", lw=REFERENCE_LINEWIDTH, linestyle=":",
               label=f"Bayes floor (posterior mean), {floor}")
    if shared:
        ax.axhline(levels[0], lw=REFERENCE_LINEWIDTH, **(REFERENCE_STYLE["preconditioned_best_post_loss"] | {
            "label": f"best single preconditioned step (theory; {levels[0]:.3f} for every d here)"}))
    else:
        ax.plot([], [], color="grey", linestyle="-.", label="best single preconditioned step (theory, same colour)")
    ax.plot([], [], "s", color="grey", label="shallow MAML meta-trained at α*_k (mean ± 95% CI)")
    ax.plot([], [], "o", mfc="none", color="grey", ms=9, label="first k that matches the preconditioned step")
    ax.set(xscale="log", xlabel="plain inner steps k on the same support set (each at its optimal α*_k)",
           ylabel="post-adaptation query loss (½ MSE, noise included)",
           title=f"(a) K = {results['support']}, r = {results['rank']}, σ² = {results['task_var']:g}, "
                 f"s² = {results['noise_var']:g}")
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.grid(alpha=0.3, which="both")
    ratio = results["ratio_steps"]
    matched = [r for r in ratio if r["steps_to_match"] is not None]
    bx.plot([r["d_over_k"] for r in matched], [r["steps_to_match"] for r in matched], "o-", color="#1f77b4",
            label="theory")
    unmatched = [r["d_over_k"] for r in ratio if r["steps_to_match"] is None]
    if unmatched:
        bx.plot(unmatched, [results["k_max"]] * len(unmatched), "^", color="#d62728",
                label=f"not matched within k = {results['k_max']}")
    bx.set(xscale="log", yscale="log", xlabel="d / K", ylabel="plain steps to match one preconditioned step",
           title="(b) steps the shallow model needs")
    for axis in (bx.xaxis, bx.yaxis):
        axis.set_major_formatter(FormatStrFormatter("%g"))
        axis.set_minor_formatter(NullFormatter())
    bx.set_xticks(ratio and [r["d_over_k"] for r in ratio])
    bx.legend(fontsize=8)
    bx.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def caption(results: dict) -> str:
    def steps(t):
        k = t["steps_to_match"]
        return f"{k}" if k is not None else f"more than {results['k_max']}"

    matches = "; ".join(f"d/K = {t['d_over_k']:g}: {steps(t)} (one preconditioned step "
                        f"{t['preconditioned_best_post_loss']:.3f}, one plain step {t['best_k_step'][0]:.3f})"
                        for t in results["theory"])
    first = results["theory"][0]
    floor = f"{first['bayes_optimal_loss']:.3f}" + (f" ± {first['bayes_ci95']:.3f} ({first['bayes_method']})"
                                                    if first["bayes_ci95"] else f" ({first['bayes_method']})")
    sims = ", ".join(f"d/K = {p['dim'] / results['support']:g}, k = {p['steps']}: {p['post_loss']:.3f} "
                     f"(theory {p['theory']:.3f})" for p in summarize(results) if p["post_loss"] is not None)
    return (f"K = {results['support']}, r = {results['rank']}, s² = {results['noise_var']:g}: plain steps (each at its "
            f"own α*_k) the shallow model needs to match one optimally preconditioned step — {matches}. The Bayes "
            f"floor, the same for every d here, is {floor}. Meta-trained shallow MAML: {sims}.")
