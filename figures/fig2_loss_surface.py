"""Figure 2, the loss surface: the one-step MAML objective of f(x) = wx against f(x) = w₂w₁x (d = 1).

(a) the shallow meta-objective L(w) (theory.shallow_maml, dim = 1) with the pre-adaptation loss
and the meta-training trajectory of w; (b) contours of the exact depth-2 meta-objective
(theory.scalar_deep) over (w₁, w₂) with its minima, the trajectory of (w₁, w₂) from a small
initialisation, and each of a few sampled tasks' adaptation step (w₁, w₂) → (w₁', w₂') at the end.
Both models are meta-trained by plain SGD on sampled meta-batches (simulations.maml.meta_loss,
autograd through the inner step), so the path follows the surface's gradient field.
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import LogNorm

from figures.common import COLORS, REFERENCE_STYLE, Profiles, draw_reference_losses
from figures.reproduction import KEY, TEXT, TRAINED
from simulations.experiments import loss_surface as experiment

TASK_COLORS = ("tab:blue", "tab:green", "tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan",
               "tab:orange")


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.loss_surface.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"iterations": 800, "meta_batch": 256, "meta_lr": 0.03, "record_every": 5, "grid": 241}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "kind": KEY, "model": KEY, "iteration": KEY,
    "w1": TRAINED, "w2": TRAINED,  # grid points, minima and gradient-descent trajectories
    "value": TRAINED,  # closed forms on the grid, losses along the trajectories (seen 1.3e-8 apart between CPUs)
    "note": TEXT,
}


def rows(results: dict) -> list[dict]:
    """Long-format CSV: the shallow curves, both trajectories, the minima and the adaptation arrows."""
    def row(kind, model, iteration="", w1="", w2="", value="", note=""):
        return {"kind": kind, "model": model, "iteration": iteration, "w1": w1, "w2": w2, "value": value,
                "note": note}

    s, d = results["shallow"], results["deep"]
    out = [row("meta_objective", "shallow", w1=w, value=v) for w, v in zip(s["w"], s["post"])]
    out += [row("pre_adaptation_loss", "shallow", w1=w, value=v) for w, v in zip(s["w"], s["pre"])]
    out += [row("trajectory", "shallow", p["iteration"], p["w"], value=p["loss"]) for p in s["path"]]
    out += [row("trajectory", "depth2", p["iteration"], p["w1"], p["w2"], p["loss"]) for p in d["path"]]
    out += [row("minimum", "depth2", w1=m["w1"], w2=m["w2"], value=m["loss"]) for m in d["minima"]]
    for a in d["arrows"]:
        out.append(row("adapted", "depth2", w1=a["w1_adapted"], w2=a["w2_adapted"], value=a["task_weight"],
                       note="value = the task's weight w_tau"))
    out += [row("theory", "", value=v, note=key) for key, v in results["theory"].items()]
    return out


def plot(results: dict):
    s, d, t = results["shallow"], results["deep"], results["theory"]
    fig, (ax_a, ax_b, ax_c) = plt.subplots(1, 3, figsize=(19, 6.4),
                                           gridspec_kw={"width_ratios": [1, 1.15, 0.85]})
    _plot_shallow(ax_a, fig, s, t)
    levels = _plot_surface(ax_b, fig, d, t, s["w"])
    _plot_zoom(ax_c, d, levels, s["w"])
    (x0, x1), (y0, y1) = ax_c.get_xlim(), ax_c.get_ylim()
    ax_b.indicate_inset([x0, y0, x1 - x0, y1 - y0], edgecolor="k")
    fig.tight_layout()
    return fig


def _plot_shallow(ax, fig, s: dict, t: dict) -> None:
    """Panel (a): L(w), the pre-adaptation loss, the reference levels and the SGD path on the curve."""
    ax.plot(s["w"], s["post"], color=COLORS["shallow"], label=f"meta-objective L(w), α = {t['alpha']:g}")
    pre = REFERENCE_STYLE["pre_adaptation_loss"]
    ax.plot(s["w"], s["pre"], color=pre["color"], linestyle=pre["linestyle"], label="pre-adaptation loss at w")
    draw_reference_losses(ax, t, keys=("shallow_best_post_loss",), with_values=True)
    ax.axhline(t["deep_min_loss"], color=COLORS["deep"], linestyle="-", linewidth=1,
               label=f"depth-2 minimum at α = {t['alpha']:g} (panel b): {t['deep_min_loss']:.3f}")
    path = s["path"]
    sc = ax.scatter([p["w"] for p in path], [p["loss"] for p in path], c=[p["iteration"] for p in path],
                    cmap="viridis", s=14, zorder=3, label="SGD trajectory of w")
    ax.plot(path[-1]["w"], path[-1]["loss"], "*", color="gold", markeredgecolor="k", markersize=13, zorder=4,
            label="end of training")
    ax.set(title=f"(a) shallow model f(x) = w·x; its best step at w = μ: α* = {t['shallow_alpha_star']:.3f}",
           xlabel="w", ylabel="expected post-adaptation loss (½ MSE)",
           xlim=(min(s["w"]), max(s["w"])), ylim=(0, 1.25 * path[0]["loss"]))
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=ax, label="meta-training iteration", pad=0.01)


def _plot_surface(ax, fig, d: dict, t: dict, w: list) -> np.ndarray:
    """Panel (b): contours, minima, the trajectory and the adaptation steps; returns the contour levels."""
    surface = np.array(d["surface"])
    levels = np.geomspace(surface.min(), np.percentile(surface, 60), 16)
    cs = ax.contourf(w, w, surface, levels=levels, norm=LogNorm(), cmap="Greys_r", extend="max")
    ax.contour(w, w, surface, levels=levels, colors="white", linewidths=0.3, alpha=0.6)
    fig.colorbar(cs, ax=ax, label="expected post-adaptation loss (½ MSE)", format="%.2f", pad=0.01)
    hyper = np.linspace(0.05, max(w), 300)
    ax.plot(hyper, t["mu"] / hyper, color="tab:orange", linestyle="--", linewidth=1, label="w₁w₂ = μ")
    path = d["path"]
    ax.plot([p["w1"] for p in path], [p["w2"] for p in path], "-o", color=COLORS["deep"], markersize=2.5,
            linewidth=1, label="SGD trajectory of (w₁, w₂)")
    ax.plot(path[0]["w1"], path[0]["w2"], "s", color=COLORS["deep"], markeredgecolor="w",
            label="initialisation")
    _draw_arrows(ax, d["arrows"], labels=False)
    ax.plot([], [], color="tab:green", label="one task's step (w₁, w₂) → (w₁', w₂'), see (c)")
    ax.plot([m["w1"] for m in d["minima"]], [m["w2"] for m in d["minima"]], "*", color="gold",
            markeredgecolor="k", markersize=13, linestyle="none", zorder=5,
            label=f"minima, L = {d['minima'][0]['loss']:.3f}")
    ax.set(title=f"(b) depth-2 model f(x) = w₂w₁x, α = {t['alpha']:g} per layer", xlabel="w₁ (bottom layer)",
           ylabel="w₂ (top layer)", xlim=(min(w), max(w)), ylim=(min(w), max(w)), aspect="equal")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2)
    return levels


def _plot_zoom(ax, d: dict, levels: np.ndarray, w: list) -> None:
    """Panel (c): a zoom on the end of training with each task's adaptation step and its target w₁w₂ = w_τ."""
    arrows = d["arrows"]
    pts = np.array([[a[key] for key in ("w1", "w2")] for a in arrows]
                   + [[a[key] for key in ("w1_adapted", "w2_adapted")] for a in arrows])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.15 * (hi - lo).max() + 0.05
    ax.contourf(w, w, np.array(d["surface"]), levels=levels, norm=LogNorm(), cmap="Greys_r", extend="max",
                alpha=0.45)
    ax.set(xlim=(lo[0] - pad, hi[0] + pad), ylim=(lo[1] - pad, hi[1] + pad))
    handles, names = _draw_arrows(ax, arrows, labels=True)
    handles += ax.plot(arrows[0]["w1"], arrows[0]["w2"], "o", color=COLORS["deep"], markersize=6, zorder=5)
    names += ["(w₁, w₂) at the end of training"]
    ax.set(title="(c) zoom: one step per task", xlabel="w₁ (bottom layer)", ylabel="w₂ (top layer)")
    ax.legend(handles, names, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2,
              title="arrow: (w₁, w₂) → (w₁', w₂'); dotted: that task's w₁w₂ = w_τ", title_fontsize=8)


def _draw_arrows(ax, arrows: list[dict], labels: bool) -> tuple[list, list[str]]:
    """Each task's step, one colour per task, longest first (the steps are collinear: all along ±(w₂, w₁));
    with ``labels``, the adapted point and its task's hyperbola w₁w₂ = w_τ. Returns legend (handles, names)
    ordered by w_τ."""
    x0, x1 = ax.get_xlim()
    legend = {}
    ranked = sorted(arrows, key=lambda a: a["task_weight"])
    for i, a in sorted(enumerate(ranked), key=lambda p: -np.hypot(p[1]["w1_adapted"] - p[1]["w1"],
                                                                  p[1]["w2_adapted"] - p[1]["w2"])):
        color = TASK_COLORS[i % len(TASK_COLORS)]
        ax.annotate("", xy=(a["w1_adapted"], a["w2_adapted"]), xytext=(a["w1"], a["w2"]),
                    arrowprops={"arrowstyle": "-|>", "color": color, "lw": 1.5, "shrinkA": 0, "shrinkB": 0})
        if labels:
            xs = np.linspace(x0, x1, 50)
            ax.plot(xs, a["task_weight"] / xs, ":", color=color, linewidth=1.3)
            legend[i] = (ax.plot(a["w1_adapted"], a["w2_adapted"], "o", color=color, markersize=4)[0],
                         f"w_τ = {a['task_weight']:.2f}")
    return [legend[i][0] for i in sorted(legend)], [legend[i][1] for i in sorted(legend)]


def caption(results: dict) -> str:
    """One line with the measured numbers, for the README."""
    s, d, t = results["shallow"], results["deep"], results["theory"]
    m = max(d["minima"], key=lambda p: (p["w1"] > 0 and p["w2"] > 0, p["w1"]))
    end_s, end_d, start_d = s["path"][-1], d["path"][-1], d["path"][0]
    step = t["alpha"] * (m["w1"] ** 2 + m["w2"] ** 2)
    setting = f"d = 1, K = {t['support']}, μ = {t['mu']:g}, σ² = {t['task_var']:g}, α = {t['alpha']:g}"
    shallow = (f"the shallow meta-objective bottoms out at {t['shallow_post_loss_at_mu']:.3f} (w = μ; "
               f"pre-adaptation {t['pre_adaptation_loss_at_mu']:.3f}) and SGD ends at w = {end_s['w']:.3f}")
    deep = (f"the depth-2 surface has its minima at (w₁, w₂) = ({m['w1']:.2f}, {m['w2']:.2f}) and symmetric "
            f"copies, loss {m['loss']:.3f} (effective step α(w₁² + w₂²) = {step:.2f}; the shallow model's "
            f"best over every α, at α* = {t['shallow_alpha_star']:.3f}, is "
            f"{t['shallow_best_post_loss']:.3f})")
    path = (f"SGD from ({start_d['w1']:g}, {start_d['w2']:g}) ends at "
            f"({end_d['w1']:.2f}, {end_d['w2']:.2f}), loss {end_d['loss']:.3f}")
    return f"{setting} on every layer: {shallow}; {deep}; {path}."
