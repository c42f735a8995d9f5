"""Figure 10, how meta-training gets there: exact gradient-flow dynamics held against plain SGD.

Time is gradient-flow time t = η·n (meta learning rate η, n meta-iterations). (a) ANIL (width h = d, head
adapted from v₀ = 0, μ = 0) on Σw = diag(2, 1, 0.5, 0.1, 0.02, 0), K = 4, s² = 0.25, α = 0.1, from
W(0) = 0.1·Uᵀ: every direction of the task structure is a logistic curve switching on at its own time
(theory.dynamics, closed form), a staircase on a log time axis; the dashed curve is the full-batch recursion
at SGD's step η, which plain SGD (no momentum, no Adam, no schedule) follows on average. (b) Shallow MAML at
α* against joint training (ERM) from the same start on the paper's family (d = 50, K = 5, r = 2): each one's
excess loss over its own limit decays exponentially, MAML's slower by the exact factor
h = (1 − α)² + α²(d + 1)/K. (c) Depth-2 full MAML on figure 3's family (d = 20): the fraction of seeded default
starts (the head scaled) whose gradient flow on the exact loss (numerical integration) ends within 1e-3 of the
best loss known, per width and head scale, with Wilson 95% intervals.
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.common import Profiles
from figures.reproduction import EXACT, KEY, TEXT, TRAINED, spread
from simulations.experiments import training_dynamics as experiment

WIDTH_COLORS = {1: "#d62728", 2: "#ff7f0e", 4: "#2ca02c", 8: "#1f77b4"}


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.training_dynamics.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"sgd_seeds": 8, "eval_tasks": 4000, "depth2_starts": 32, "anil_last": 1200.0,
                            "depth2_scales": (0.03, 0.1, 0.3, 1.0, 3.0)}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)

COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "series": KEY, "x": KEY, "width": KEY,
    "exact": EXACT,  # closed forms (a, b)
    "value": TRAINED, "ci95": spread("value"),  # SGD runs; the depth-2 flow's numerical ends and fractions
    "note": TEXT,
}


def _excess(panel: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(panel["times"]), np.asarray(panel["flow"]) - panel["limit"]


def rows(results: dict) -> list[dict]:
    keys = ("panel", "series", "x", "width", "exact", "value", "ci95", "note")
    blank = dict.fromkeys(keys, "")
    a, out = results["anil"], []
    eta = a["eta"]
    for n, rec, flow, (mean, ci) in zip(a["steps"], a["recursion"], a["flow_at_steps"], a["sgd"]):
        out.append({**blank, "panel": "a", "series": "anil", "x": n * eta, "exact": flow, "value": mean, "ci95": ci,
                    "note": f"flow at t = ηn; full-batch recursion {rec:.6g}; SGD mean ± 95% over seeds"})
    for i, t in enumerate(a["switch_on_times"]):
        out.append({**blank, "panel": "a", "series": f"switch_on_{i + 1}", "x": t, "exact": a["limit"],
                    "note": "a mode's half-way time; exact = the flow's limit"})
    s = results["shallow"]
    for which in ("maml", "erm"):
        panel = s[which]
        times = np.asarray(panel["steps"]) * s["eta"]
        exact = np.interp(times, panel["times"], panel["flow"])
        for t, e, (mean, ci) in zip(times, exact, panel["sgd"]):
            out.append({**blank, "panel": "b", "series": which, "x": float(t), "exact": float(e), "value": mean,
                        "ci95": ci, "note": f"limit {panel['limit']:.6g}"})
    for c in results["depth2"]["cells"]:
        out.append({**blank, "panel": "c", "series": "basin", "x": c["init_scale"], "width": c["width"],
                    "exact": "", "value": c["fraction"], "ci95": f"{c['ci95'][0]:.4f}..{c['ci95'][1]:.4f}",
                    "note": f"{c['reached']}/{c['starts']} within {results['depth2']['tol']:g} of "
                            f"{c['optimum']:.6g}; ends " + ", ".join(f"{v:.4f}x{k}" for v, k in c["end_values"])})
    return out


def plot(results: dict):
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(17, 5.6))
    _plot_anil(ax, results)
    _plot_shallow(bx, results)
    _plot_basins(cx, results)
    fig.tight_layout()
    return fig


def _plot_anil(ax, results: dict) -> None:
    a = results["anil"]
    times, flow = np.asarray(a["times"]), np.asarray(a["flow"])
    ax.plot(times[1:], flow[1:], color="#1f77b4", lw=2, label="gradient flow, exact (logistic modes)")
    steps = np.asarray(a["steps"])
    shown = steps > 0
    ax.plot(steps[shown] * a["eta"], np.asarray(a["recursion"])[shown], "--", color="grey", lw=1.2,
            label=f"full-batch recursion at η = {a['eta']:g} (exact)")
    sgd = np.asarray(a["sgd"])
    ax.errorbar(steps[shown] * a["eta"], sgd[shown, 0], yerr=sgd[shown, 1], fmt="o", color="#d62728", ms=4,
                capsize=2, label=f"plain SGD, η = {a['eta']:g}, batch {results['sgd_batch']} "
                                  f"(mean ± 95%, {results['sgd_seeds']} seeds)")
    for i, t in enumerate(a["switch_on_times"]):
        ax.axvline(t, color="black", lw=0.8, ls=":", label="switch-on times (half-way)" if i == 0 else None)
        ax.text(t, flow.max(), f"σ²={a['spectrum'][i]:g}", rotation=90, fontsize=7, va="top", ha="right")
    ax.axhline(a["limit"], color="black", lw=1, ls="-.",
               label=f"limit {a['limit']:.4f} (ANIL's width-{len(a['spectrum'])} optimum)")
    ax.set(xscale="log", xlabel="gradient-flow time t = η·n",
           ylabel="post-adaptation query loss (½ MSE, noise incl.)",
           title=f"(a) ANIL, Σw = diag({', '.join(f'{v:g}' for v in a['spectrum'])}), K = {a['support']}, "
                 f"α = {a['alpha']:g}")
    ax.legend(fontsize=7, loc="center left")
    ax.grid(alpha=0.3, which="both")


def _plot_shallow(bx, results: dict) -> None:
    s = results["shallow"]
    for which, color, label in (("maml", "#d62728", "shallow MAML at α*"),
                                ("erm", "#000000", "joint training (ERM, α = 0)")):
        panel = s[which]
        times, excess = _excess(panel)
        bx.plot(times, excess, color=color, lw=2, label=f"{label}: exact, L(t) − {panel['limit']:.4f}")
        steps = np.asarray(panel["steps"]) * s["eta"]
        sgd = np.asarray(panel["sgd"])
        keep = sgd[:, 0] - panel["limit"] > 2 * sgd[:, 1]  # a point resolved above its limit (log axis)
        bx.errorbar(steps[keep], sgd[keep, 0] - panel["limit"], yerr=sgd[keep, 1], fmt="o", color=color, ms=4,
                    capsize=2)
    bx.plot([], [], "o", color="grey", label=f"plain SGD, η = {s['eta']:g} (mean ± 95%, {results['sgd_seeds']} seeds)")
    bx.set(yscale="log", xlabel="gradient-flow time t = η·n", ylabel="excess loss over its own limit",
           title=f"(b) d = {s['dim']}, K = {s['support']}, r = {s['rank']}: MAML slower by h = {s['slowdown']:.4f}")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3, which="both")


def _plot_basins(cx, results: dict) -> None:
    d2 = results["depth2"]
    for width in sorted({c["width"] for c in d2["cells"]}):
        cells = [c for c in d2["cells"] if c["width"] == width]
        x = np.array([c["init_scale"] for c in cells])
        y = np.array([c["fraction"] for c in cells])
        err = np.array([[c["fraction"] - c["ci95"][0], c["ci95"][1] - c["fraction"]] for c in cells]).T
        cx.errorbar(x, y, yerr=err, fmt="o-", color=WIDTH_COLORS.get(width, "grey"), capsize=3,
                    label=f"width {width} (optimum {cells[0]['optimum']:.3f})")
    cx.set(xscale="log", ylim=(-0.05, 1.05), xlabel="head scale over PyTorch's default initialisation",
           ylabel=f"fraction of starts reaching the optimum (±{d2['tol']:g})",
           title=f"(c) depth-2 MAML, d = {d2['dim']}, K = {d2['support']}, r = {d2['rank']}: "
                 f"gradient-flow basins")
    cx.legend(fontsize=7, title=f"{d2['starts']} seeded starts per point; Wilson 95%", title_fontsize=7)
    cx.grid(alpha=0.3, which="both")


def caption(results: dict) -> str:
    a, s, d2 = results["anil"], results["shallow"], results["depth2"]
    switches = ", ".join(f"σ² = {v:g}: t = {t:.3g}" for v, t in zip(a["spectrum"], a["switch_on_times"]))
    sgd = np.asarray(a["sgd"])
    inside = int(np.sum(np.abs(sgd[:, 0] - np.asarray(a["recursion"])) <= sgd[:, 1]))
    gap = float(np.max(np.abs(np.asarray(a["recursion"]) - np.asarray(a["flow_at_steps"]))))
    cells = "; ".join(f"width {c['width']}, head ×{c['init_scale']:g}: {c['reached']}/{c['starts']}"
                      for c in d2["cells"])
    optima = ", ".join(f"width {h}: {next(c['optimum'] for c in d2['cells'] if c['width'] == h):.4f}"
                       for h in sorted({c['width'] for c in d2['cells']}))
    stops = "; ".join(f"width {h} ends at " + ", ".join(
        f"{v:.4f}" for v in sorted({v for c in d2["cells"] if c["width"] == h for v, _ in c["end_values"]}))
        for h in sorted({c['width'] for c in d2['cells']}))
    return (f"(a) ANIL's modes switch on one after another ({switches}); the loss tends to {a['limit']:.4f}, ANIL's "
            f"width-{len(a['spectrum'])} optimum. Plain SGD at η = {a['eta']:g}: {inside} of {len(sgd)} points "
            f"within their 95% interval of the full-batch recursion, which is at most {gap:.3g} from the flow at "
            f"the same t. (b) Shallow MAML's excess loss decays as e^(−2ht) with h = {s['slowdown']:.4f}, joint "
            f"training's as e^(−2t). (c) Depth-2 full MAML, d = {d2['dim']}: starts reaching the best loss known "
            f"({optima}) — {cells}. The flows stop at: {stops}.")
