"""Figure 9, beyond infinitely many identical tasks: finite task sets and tasks of different hardness.

(a) Finite task sets (Bernacchia, ICLR 2021): m = 3 training tasks in d = 60 (n_t = 30 support and
n_v = 2 query points each, s² = 1, E‖w − w₀‖² = 0.25), test tasks with n_r = 20 and α_r = 0.2. For each
training step α_t the meta-trained initialisation ω* is the exact minimiser of the empirical one-step
MAML objective nearest ω₀ (theory.finite_tasks); its expected test loss is exact given ω*, averaged over
training sets by Monte-Carlo (mean and 95% interval; the same sets at every α_t). The dashed curve is the
large-d approximation derived in theory/finite_tasks.py (labelled as such). The minimum lies at α_t < 0.
(b) Heterogeneous tasks (Collins et al. 2020; Fallah et al. 2020; Gao & Sener 2020): two equally likely
groups in d = 1, input variance 1 with task mean +1 (easy) and 0.1 with task mean −1 (hard), α = 0.5.
Lines: the closed-form fixed points of MAML, FO-MAML, Reptile and ERM against the number of inner steps k
(theory.fixed_points; K = ∞ solid, K = 5 dashed; a repelling fixed point is drawn hollow). Points: where
each algorithm's meta-training on sampled tasks settles (simulations.twins.fixed_points: mean and 95%
interval over independent runs).
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt

from figures.common import Profiles
from figures.reproduction import EXACT, FIXED_SEED, KEY, TEXT, TRAINED, spread
from simulations.experiments import beyond_identical_tasks as experiment
from simulations.experiments.beyond_identical_tasks import ALGORITHMS

LABELS = {"maml": "MAML", "fomaml": "FO-MAML", "reptile": "Reptile", "erm": "ERM (joint training)"}
ALGORITHM_COLORS = {"maml": "#d62728", "fomaml": "#1f77b4", "reptile": "#2ca02c", "erm": "#000000"}
SUPPORT_STYLE = {"inf": ("-", "o"), "5": ("--", "s")}


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.beyond_identical_tasks.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"runs": 10_000, "sim_steps": (1, 2, 3, 4, 5, 6), "sim_runs": 10, "sim_iterations": 400}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "algorithm": KEY, "train_alpha": KEY, "steps": KEY, "support": KEY,
    # exact given the training set, Monte-Carlo over seeded training sets
    "value": FIXED_SEED, "ci95": spread("value", FIXED_SEED),
    "approximation": EXACT, "stable": TEXT,
    "meta_trained": TRAINED, "meta_trained_ci95": spread("meta_trained"),  # SGD meta-training runs
    "note": TEXT,
}


def rows(results: dict) -> list[dict]:
    """CSV: panel (a) per α_t, then panel (b)'s closed forms per (algorithm, k, K) with the meta-trained value."""
    keys = ("panel", "algorithm", "train_alpha", "steps", "support", "value", "ci95", "approximation",
            "stable", "meta_trained", "meta_trained_ci95", "note")
    blank = dict.fromkeys(keys, "")
    out = [{**blank, "panel": "a", "train_alpha": r["train_alpha"], "value": r["test_loss"],
            "ci95": r["test_loss_ci95"],
            "approximation": "" if r.get("test_loss_approximation") is None else r["test_loss_approximation"],
            "note": "expected test loss (exact given ω*), Monte-Carlo over training sets"}
           for r in results["finite"]["rows"]]
    sims = {(s["algorithm"], s["steps"], s["support"]): s for s in results["simulation"]}
    for t in results["fixed_points"]:
        s = sims.get((t["algorithm"], t["steps"], t["support"]))
        support = "∞" if t["support"] == "inf" else t["support"]  # K; the CSV's numbers are all finite
        out.append({**blank, "panel": "b", "algorithm": t["algorithm"], "steps": t["steps"], "support": support,
                    "value": "" if t["theta"] is None else t["theta"], "stable": t["stable"],
                    "meta_trained": "" if s is None else s["theta"][0],
                    "meta_trained_ci95": "" if s is None else s["ci95"][0], "note": t["note"]})
    return out


def plot(results: dict):
    fig, (ax_a, ax_b) = plt.subplots(1, 2, figsize=(13, 4.9))
    _finite_panel(ax_a, results)
    _fixed_point_panel(ax_b, results)
    fig.tight_layout()
    return fig


def _finite_panel(ax, results: dict) -> None:
    finite, setting = results["finite"], results["setting"]
    rows_ = finite["rows"]
    alphas = [r["train_alpha"] for r in rows_]
    ax.errorbar(alphas, [r["test_loss"] for r in rows_], yerr=[r["test_loss_ci95"] for r in rows_], color="#d62728",
                marker="o", markersize=4, capsize=2, label=f"exact given ω*, mean over {setting['runs']} training "
                                                            "sets (95% CI)")
    approx = [(r["train_alpha"], r["test_loss_approximation"]) for r in rows_
              if r.get("test_loss_approximation") is not None]
    if approx:
        ax.plot(*zip(*approx), "--", color="#7f7f7f", linewidth=1.2, label="large-d approximation (derived here)")
    best = min(rows_, key=lambda r: r["test_loss"])
    ax.plot(best["train_alpha"], best["test_loss"], "*", color="#9467bd", markersize=14,
            label=f"minimum: α_t = {best['train_alpha']:g}")
    ax.axvline(0.0, color="#7f7f7f", linewidth=0.8, linestyle=":")
    ax.annotate("α_t = 0", (0.0, ax.get_ylim()[1]), xytext=(3, -12), textcoords="offset points", fontsize=7.5,
                color="#7f7f7f")
    ax.set(title=f"(a) finite task set: m = {setting['tasks']} tasks, d = {setting['dim']}, α_r = "
                 f"{setting['test_alpha']:g}", xlabel="training inner step α_t",
           ylabel="expected test loss after adaptation (½ MSE)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7.5, loc="upper left", framealpha=0.9)


def _fixed_point_panel(ax, results: dict) -> None:
    theory, sims = results["fixed_points"], results["simulation"]
    for support, (linestyle, marker) in SUPPORT_STYLE.items():
        for algorithm in ALGORITHMS:
            line = sorted((t for t in theory if t["algorithm"] == algorithm and t["support"] == support
                           and t["theta"] is not None), key=lambda t: t["steps"])
            if not line:
                continue
            color = ALGORITHM_COLORS[algorithm]
            ax.plot([t["steps"] for t in line], [t["theta"] for t in line], linestyle, color=color, linewidth=1.3,
                    label=f"{LABELS[algorithm]} (theory)" if support == "inf" else None)
            unstable = [t for t in line if not t["stable"]]
            ax.plot([t["steps"] for t in unstable], [t["theta"] for t in unstable], "o", color=color,
                    fillstyle="none", markersize=8)
            pts = sorted((s for s in sims if s["algorithm"] == algorithm and s["support"] == support),
                         key=lambda s: s["steps"])
            if pts:
                ax.errorbar([s["steps"] + (0.08 if support == "5" else -0.08) for s in pts],
                            [s["theta"][0] for s in pts], yerr=[s["ci95"][0] for s in pts], color=color,
                            marker=marker, linestyle="none", capsize=2, markersize=5)
    easy = max(results["groups"], key=lambda g: g["input_var"])
    for g in results["groups"]:
        ax.axhline(g["task_mean"], color="#bbbbbb", linewidth=0.9)
        ax.annotate(f"{'easy' if g is easy else 'hard'} group's task mean (input variance {g['input_var']:g})",
                    (1, g["task_mean"]), xytext=(0, 3), textcoords="offset points", fontsize=7, color="#7f7f7f")
    ax.plot([], [], "-", color="#555555", label="K = ∞ (theory: solid; meta-trained: ●)")
    ax.plot([], [], "--", color="#555555", label="K = 5 (theory: dashed; meta-trained: ■)")
    ax.plot([], [], "o", color="#555555", fillstyle="none", markersize=8, label="repelling fixed point")
    ax.set(title=f"(b) two task groups, α = {results['alpha']:g}: where each algorithm converges",
           xlabel="inner steps k", ylabel="fixed point θ* (d = 1)")
    ax.set_xticks(sorted({t["steps"] for t in theory}))
    means = [g["task_mean"] for g in results["groups"]]
    ax.set_ylim(min(means) - 0.25 - 0.12 * (max(means) - min(means)) * 3, max(means) + 0.15)  # room for the legend
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower center", framealpha=0.95, ncol=3)


def _ordering(results: dict) -> str:
    """Which algorithm weights the hard group most, at each K and k, read from the closed forms."""
    hard = min(results["groups"], key=lambda g: g["input_var"])["task_mean"]
    parts = []
    for support in sorted({t["support"] for t in results["fixed_points"]}, key=lambda s: s != "inf"):
        closest = []
        for k in sorted({t["steps"] for t in results["fixed_points"]}):
            at_k = [t for t in results["fixed_points"] if t["support"] == support and t["steps"] == k
                    and t["theta"] is not None]
            closest.append(LABELS[min(at_k, key=lambda t: abs(t["theta"] - hard))["algorithm"]])
        label = "K = ∞" if support == "inf" else f"K = {support}"
        runs = []  # (name, first k, last k) of consecutive k with the same closest algorithm
        for k, name in enumerate(closest, start=1):
            if runs and runs[-1][0] == name:
                runs[-1][2] = k
            else:
                runs.append([name, k, k])
        spans = [f"{name} at every k" if len(runs) == 1 else
                 f"{name} at k = {a}" + ("" if a == b else f"–{b}") for name, a, b in runs]
        parts.append(f"{label}: " + ", ".join(spans))
    return "Closest to the hard group's mean (" + "; ".join(parts) + ")."


def caption(results: dict) -> str:
    finite = results["finite"]
    best = min(finite["rows"], key=lambda r: r["test_loss"])
    zero = next((r for r in finite["rows"] if r["train_alpha"] == 0), None)
    gain = finite.get("gain_over_zero_step")
    gain_text = ""
    if zero is not None:
        gain_text = f", against {zero['test_loss']:.4f} ± {zero['test_loss_ci95']:.4f} at α_t = 0"
        if isinstance(gain, dict):
            gain_text += f" (paired gain {gain['mean']:.4f} ± {gain['ci95']:.4f})"
    s = results["setting"]

    def at(algorithm, k, support):
        t = next(t for t in results["fixed_points"]
                 if (t["algorithm"], t["steps"], t["support"]) == (algorithm, k, support))
        return "none" if t["theta"] is None else f"{t['theta']:.3f}" + ("" if t["stable"] else " (repelling)")

    sims = results["simulation"]
    worst = max((abs(sim["theta"][0] - next(t["theta"] for t in results["fixed_points"]
                                            if (t["algorithm"], t["steps"], t["support"])
                                            == (sim["algorithm"], sim["steps"], sim["support"])))
                 / max(sim["ci95"][0], 1e-12)) for sim in sims) if sims else None
    k_max = max(t["steps"] for t in results["fixed_points"])
    return (f"(a) d = {s['dim']}, m = {s['tasks']}, n_t = {s['train_support']}, n_v = {s['train_query']}, "
            f"n_r = {s['test_support']}, s² = {s['noise_var']:g}, E‖w − w₀‖² = {s['task_norm2']:g}, α_r = "
            f"{s['test_alpha']:g}: the expected test loss is lowest at α_t = {best['train_alpha']:g} "
            f"({best['test_loss']:.4f} ± {best['test_loss_ci95']:.4f}{gain_text}); the best test step for those "
            f"ω* is α_r* = {finite['best_test_alpha']:.3f}. (b) Fixed points at K = ∞, k = 1 / k = {k_max}: MAML "
            f"{at('maml', 1, 'inf')} / {at('maml', k_max, 'inf')}, FO-MAML {at('fomaml', 1, 'inf')} / "
            f"{at('fomaml', k_max, 'inf')}, Reptile {at('reptile', 1, 'inf')} / {at('reptile', k_max, 'inf')}, "
            f"ERM {at('erm', 1, 'inf')}; at K = 5, k = {k_max}: MAML {at('maml', k_max, '5')}, FO-MAML "
            f"{at('fomaml', k_max, '5')}, Reptile {at('reptile', k_max, '5')}. {_ordering(results)} "
            + (f"Meta-trained points: the largest distance from the closed form is {worst:.2f} of its 95% "
               f"half-width ({len(sims)} points)." if sims else ""))
