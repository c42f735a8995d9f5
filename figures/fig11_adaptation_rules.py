"""Figure 11, every adaptation rule on one axis, and in-context learning as one meta-learned step.

(a) A rotated task covariance (Σw = R diag(λ) Rᵀ, λ_i ∝ 1/i with tr Σw = 1, R a 45° rotation of each coordinate
pair), Σx = I, K = 5, s² = 0.25, against d/K: the post-adaptation loss of the best plain step, the best 5 plain
steps, Meta-SGD (the best per-parameter step: a diagonal preconditioner), the optimal preconditioner, iMAML with its
best scalar λ (numerical over a Monte-Carlo that is exact given the support inputs) and the Bayes floor, which iMAML
reaches with its best Λ = (s²/K)Σw⁻¹ (the posterior mean). Points: Meta-SGD and iMAML (scalar λ) meta-trained.
(b) One linear self-attention layer, d = 5, Λ = diag(1, …, 5)/15, w ~ N(0, I): trained at N = 20 and tested at M
(exact), a layer trained at each M itself (exact), and literal layers trained at N on prompts (mean ± 95%).
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import NullFormatter

from figures.common import Profiles
from figures.reproduction import KEY, TEXT, TRAINED, spread
from simulations.experiments import adaptation_rules as experiment

LINES = (  # (key, label, colour, style)
    ("plain", "best plain step (exact)", "#000000", "-"),
    ("many_steps", "best 5 plain steps (exact)", "#7f7f7f", "-"),
    ("meta_sgd", "Meta-SGD: best per-parameter step (exact)", "#2ca02c", "-"),
    ("imaml_scalar", "iMAML, best scalar λ (numerical; Monte-Carlo exact given X)", "#9467bd", "--"),
    ("preconditioned", "optimal preconditioner P* (exact)", "#1f77b4", "-"),
    ("bayes", "Bayes floor = iMAML with its best Λ (posterior mean)", "#d62728", ":"),
)


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.adaptation_rules.Settings, whose defaults are the quick profile;
    ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"dims": (5, 10, 20, 40, 80), "ridge_draws": 100_000, "floor_draws": 400_000,
                            "sim_dims": (5, 10, 20, 40), "sim_iterations": 1500, "sim_seeds": 4,
                            "eval_tasks": 20_000, "icl_seeds": 4, "icl_iterations": 1500}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)

COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "series": KEY, "x": KEY,
    # one column holds closed forms, seeded Monte-Carlo, numerical minima and trained runs: the loosest rule of them
    "value": TRAINED, "ci95": spread("value"),
    "kind": TEXT,
}


def rows(results: dict) -> list[dict]:
    out = []
    for r in results["rules"]:
        for key, label, _, _ in LINES:
            ci = r.get(f"{key}_ci95", "")
            out.append({"panel": "a", "series": key, "x": r["d_over_k"], "value": r[key], "ci95": ci,
                        "kind": label})
    for rule, name in (("meta_sgd", "Meta-SGD"), ("imaml", "iMAML (scalar λ)")):
        for p in results[f"{rule}_trained"]:
            out.append({"panel": "a", "series": f"{rule}_trained", "x": p["d_over_k"], "value": p["mean"],
                        "ci95": p["ci95"], "kind": f"{name} meta-trained, mean ± 95% over seeds"})
    icl = results["icl"]
    for m, exact, trained in zip(icl["tests"], icl["at_tests"], icl["trained"]):
        out.append({"panel": "b", "series": "trained_at_n", "x": m, "value": exact, "ci95": "",
                    "kind": f"Γ* at N = {icl['context']}, exact"})
        out.append({"panel": "b", "series": "attention_trained", "x": m, "value": trained["mean"],
                    "ci95": trained["ci95"], "kind": "literal layers trained at N, mean ± 95% over seeds"})
    return out


def plot(results: dict):
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 5.8), gridspec_kw={"width_ratios": [1.3, 1]})
    x = [r["d_over_k"] for r in results["rules"]]
    for key, label, color, style in LINES:
        values = np.array([r[key] for r in results["rules"]])
        ax.plot(x, values, style, marker="o", ms=3, color=color, lw=1.6, label=label)
        ci = [r.get(f"{key}_ci95") or 0.0 for r in results["rules"]]
        if any(ci):
            ax.fill_between(x, values - ci, values + ci, color=color, alpha=0.15, lw=0)
    for rule, name, color, marker in (("meta_sgd", "Meta-SGD", "#2ca02c", "s"),
                                      ("imaml", "iMAML (scalar λ)", "#9467bd", "D")):
        pts = results[f"{rule}_trained"]
        ax.errorbar([p["d_over_k"] for p in pts], [p["mean"] for p in pts], yerr=[p["ci95"] for p in pts],
                    fmt=marker, color=color, ms=6, mfc="none", capsize=3,
                    label=f"{name} meta-trained ({results['sim_iterations']} Adam steps; mean ± 95%, "
                          f"{results['sim_seeds']} seeds)")
    ax.set(xscale="log", xlabel="d / K", ylabel="post-adaptation query loss (½ MSE, noise included)",
           title=f"(a) rotated Σw (power law), Σx = I, K = {results['support']}, s² = {results['noise_var']:g}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"{v:g}" for v in x])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(fontsize=7, loc="upper left")
    ax.grid(alpha=0.3, which="both")
    icl = results["icl"]
    bx.plot(icl["lengths"], icl["trained_at_n"], color="#1f77b4", lw=2,
            label=f"trained at N = {icl['context']}, tested at M (exact)")
    bx.plot(icl["lengths"], icl["trained_at_m"], "--", color="grey", lw=1.4, label="trained at M itself (exact)")
    trained = icl["trained"]
    bx.errorbar(icl["tests"], [t["mean"] for t in trained], yerr=[t["ci95"] for t in trained], fmt="o",
                color="#d62728", capsize=3,
                label=f"attention layers trained at N on prompts (mean ± 95%, {icl['seeds']} seeds)")
    bx.axvline(icl["context"], color="black", lw=0.8, ls=":")
    bx.set(xscale="log", yscale="log", xlabel="test context length M (pairs per prompt)",
           ylabel="in-context test loss (½ MSE)",
           title=f"(b) linear attention, d = {icl['dim']}, Λ = diag(1…{icl['dim']})/{3 * icl['dim']}, Σw = I")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return fig


def caption(results: dict) -> str:
    def at(r):
        return (f"d/K = {r['d_over_k']:g}: plain {r['plain']:.3f}, 5 steps {r['many_steps']:.3f}, Meta-SGD "
                f"{r['meta_sgd']:.3f}, iMAML best λ = {r['imaml_lambda']:.3g} {r['imaml_scalar']:.3f} ± "
                f"{r['imaml_scalar_ci95']:.3f}, P* {r['preconditioned']:.3f}, Bayes floor {r['bayes']:.3f}"
                + (f" ± {r['bayes_ci95']:.3f}" if r["bayes_ci95"] else ""))
    pts = "; ".join(f"{name} at d/K = {p['d_over_k']:g}: {p['mean']:.3f} ± {p['ci95']:.3f}"
                    for rule, name in (("meta_sgd", "Meta-SGD"), ("imaml", "iMAML"))
                    for p in results[f"{rule}_trained"])
    icl = results["icl"]
    tests = ", ".join(f"M = {m}: {e:.4f} (trained layers {t['mean']:.4f} ± {t['ci95']:.4f})"
                      for m, e, t in zip(icl["tests"], icl["at_tests"], icl["trained"]))
    gaps = ", ".join(f"{g:.1%}" for g in icl["gamma_gaps"])
    rules = "; ".join(at(r) for r in results["rules"])
    return (f"(a) K = {results['support']}, s² = {results['noise_var']:g}, rotated power-law Σw — {rules}. "
            f"Meta-trained: {pts}. (b) One linear attention layer trained at N = {icl['context']}: "
            f"{tests}; the trained layers' Γ is within {gaps} of Γ* (relative Frobenius distance).")
