"""Figure 3, depth and width: post-adaptation loss of MAML-trained deep linear models, and what theory says
they can reach.

Subspace regression tasks (Σx = I, Σw = UUᵀ of rank r, μ = 0, s² = 0), one inner step at the shallow
model's α* = K/(K + d + 1) on every layer. (a) against depth at a fixed width; (b) against width at
depth 2, full MAML and ANIL (head only); (c) against d/K (d varied at fixed K) for the shallow model and
a depth-2 model; (d) the narrow widths, where meta-training stops short of the depth-2 optimum: which
minimum of the exact objective it reaches, and an initialisation that reaches the global one.
Each point: mean and 95% interval over seeds of the evaluation on fresh tasks
(simulations.training.evaluate) after meta-training with Adam (a setting's seeds at once:
simulations.training.meta_train_runs, the numbers of simulations.training.meta_train run by run).

Theory. Levels: the pre-adaptation loss at θ = μ, the shallow model's best one-step loss and the
optimal-preconditioner loss. Per width: ANIL's best width-h loss (theory.anil_width, closed form at
μ = 0) and the depth-2 full-MAML best (theory.depth2_maml.depth2_best_post_loss, exact loss, minimised
numerically by L-BFGS from ANIL's optimum and seeded random starts: an upper bound on the minimum). Per
run, at its trained weights: the exact loss (depth 1: theory.shallow_maml; depth 2: the exact depth-2
loss; ANIL: theory.anil_width), so every trained point can be held against its closed form; and at
depth ≥ 2 the first-order surrogate (preconditioned loss at the implicit preconditioner), an
approximation whose error is O(α²). In panel (d), for each run, deterministic L-BFGS descent on the exact
depth-2 objective from that run's own initial weights: the minimum its initialisation leads to. A run
whose meta-training diverges is a missing point with a note, never data.
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.common import COLORS, REFERENCE_LINEWIDTH, REFERENCE_STYLE, Profiles, draw_reference_losses
from figures.reproduction import EXACT, KEY, TEXT, TRAINED, spread
from simulations.experiments import depth_width as experiment
from simulations.statistics import mean_ci95
from theory.shallow_maml import REFERENCE_LOSSES

PANELS = ("depth", "width", "ratio", "gap")


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.depth_width.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"iterations": 2000, "meta_batch": 64, "eval_tasks": 20_000, "seeds": 10,
                            "restarts": 6, "depths": (1, 2, 3, 4, 5), "widths": (1, 2, 4, 8, 16, 32),
                            "dims": (5, 10, 20, 40, 80)}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "x": KEY, "dim": KEY, "depth": KEY, "width": KEY, "variant": KEY,
    # meta-trained runs, the exact losses at their trained weights, L-BFGS descents and optima (float64)
    "post_loss": TRAINED, "post_ci95": spread("post_loss"), "pre_loss": TRAINED, "pre_ci95": spread("pre_loss"),
    "closed_form_at_trained": TRAINED, "surrogate_at_trained": TRAINED, "descent_from_init": TRAINED,
    "seeds": EXACT, "diverged": EXACT, "note": TEXT,
}


def _mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def summarize(results: dict) -> list[dict]:
    """One row per panel point, by panel and x: mean and 95% interval over the seeds that did not diverge."""
    out, setting = [], lambda r: (r["dim"], r["depth"], r["width"], r.get("variant", "maml"))
    order = lambda p: (PANELS.index(p["panel"].split(":")[0]), p["panel"], p["x"])  # noqa: E731
    for p in sorted(results["points"], key=order):
        runs = [r for r in results["runs"] if setting(r) == setting(p)]
        ok = [r for r in runs if r["post_loss"] is not None]
        post = mean_ci95([r["post_loss"] for r in ok]) if ok else (None, None)
        pre_loss = mean_ci95([r["pre_loss"] for r in ok]) if ok else (None, None)
        out.append({**p, "post_loss": post[0], "post_ci95": post[1], "pre_loss": pre_loss[0],
                    "pre_ci95": pre_loss[1],
                    "closed_form_at_trained": _mean(r["closed_form_at_trained"] for r in ok),
                    "surrogate_at_trained": _mean(r.get("surrogate_at_trained") for r in ok),
                    "descent_from_init": _mean(r.get("descent_from_init") for r in runs),
                    "seeds": len(ok), "diverged": len(runs) - len(ok),
                    "note": "; ".join(r["note"] for r in runs if r["note"])})
    return out


def rows(results: dict) -> list[dict]:
    """CSV: one row per panel point (a missing mean is left empty), then the theory per d and per width."""
    keys = ("panel", "x", "dim", "depth", "width", "variant", "post_loss", "post_ci95", "pre_loss", "pre_ci95",
            "closed_form_at_trained", "surrogate_at_trained", "descent_from_init", "seeds", "diverged", "note")
    out = [{k: ("" if p[k] is None else p[k]) for k in keys} for p in summarize(results)]
    blank = dict.fromkeys(keys, "")
    for t in results["theory"]:
        for key in ("alpha", *REFERENCE_LOSSES):
            out.append({**blank, "panel": "theory", "x": t["d_over_k"], "dim": t["dim"], "post_loss": t[key],
                        "note": key})
    for a in results["anil_best"]:
        out.append({**blank, "panel": "theory", "x": a["width"], "dim": results["main_dim"], "depth": 2,
                    "width": a["width"], "variant": "anil", "post_loss": a["anil_best_post_loss"],
                    "note": "anil_best_post_loss (closed form)"})
    for b in results["depth2_best"]:
        out.append({**blank, "panel": "theory", "x": b["width"], "dim": results["main_dim"], "depth": 2,
                    "width": b["width"], "variant": "maml", "post_loss": b["depth2_best_post_loss"],
                    "note": f"depth2_best_post_loss ({b['method']})"})
    return out


THEORY_MARKERS = {"closed_form_at_trained": ("exact loss at the trained weights (theory)", "D"),
                  "surrogate_at_trained": ("first-order surrogate at the trained weights (approximation)", "v")}


def plot(results: dict):
    points = summarize(results)
    theory = {t["dim"]: t for t in results["theory"]}
    main = theory[results["main_dim"]]
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.6))
    (ax_depth, ax_width), (ax_ratio, ax_gap) = axes
    _depth_panel(ax_depth, [p for p in points if p["panel"] == "depth"], main, results)
    _width_panel(ax_width, points, main, results)
    _ratio_panel(ax_ratio, points, results)
    _gap_panel(ax_gap, points, main, results)
    for ax in axes.flat:
        ax.set(ylabel="post-adaptation query loss (½ MSE)", ylim=(0, 1.15 * main["pre_adaptation_loss"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right" if ax is ax_ratio else "lower left", framealpha=0.9)
    fig.tight_layout()
    return fig


def _depth_panel(ax, points: list[dict], main: dict, results: dict) -> None:
    """(a): MAML-trained against depth, with the exact loss and the surrogate at the trained weights."""
    draw_reference_losses(ax, main)
    _series(ax, points, COLORS["deep"], "MAML-trained (mean, 95% CI)")
    _theory_at_trained(ax, points)
    ax.set_xticks([p["x"] for p in points])
    ax.annotate("depth 1 = shallow model", (1, main["shallow_best_post_loss"]), xytext=(8, 12),
                textcoords="offset points", fontsize=7.5)
    ax.set(title=f"(a) depth, width {results['width']} (d = {main['dim']})", xlabel="depth L")


def _theory_at_trained(ax, points: list[dict], color: str = "#17becf") -> None:
    """The closed forms at each point's trained weights, drawn just right of the point (so both show)."""
    for shift, (key, (label, marker)) in zip((0.12, 0.24), THEORY_MARKERS.items()):
        have = [p for p in points if p[key] is not None]
        if have:
            ax.plot([p["x"] + shift for p in have], [p[key] for p in have], marker, color=color, markersize=6,
                    fillstyle="none", linestyle="none", label=label)


def _width_panel(ax, points: list[dict], main: dict, results: dict) -> None:
    """(b): full MAML and ANIL against width, with both optima per width."""
    draw_reference_losses(ax, main)
    maml = [p for p in points if p["panel"] == "width"]
    _series(ax, maml, COLORS["deep"], "full MAML, meta-trained (mean, 95% CI)")
    _series(ax, [p for p in points if p["panel"] == "width:anil"], ANIL_COLOR, "ANIL, meta-trained (mean, 95% CI)")
    anil = results["anil_best"]
    ax.step([a["width"] for a in anil], [a["anil_best_post_loss"] for a in anil], where="post", color=ANIL_COLOR,
            linewidth=REFERENCE_LINEWIDTH, linestyle="--", label="ANIL's best at width h (theory, closed form)")
    best = results["depth2_best"]
    ax.plot([b["width"] for b in best], [b["depth2_best_post_loss"] for b in best], "*", color=COLORS["deep"],
            markersize=11, fillstyle="none", label="full MAML's best at width h (theory, exact loss, L-BFGS)")
    widths = sorted({p["x"] for p in maml} | {a["width"] for a in anil})
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.axvline(results["rank"], color=COLORS["theory"], linewidth=0.8, alpha=0.6)
    ax.annotate(f"h = r = {results['rank']}", (results["rank"], 1.07 * main["pre_adaptation_loss"]),
                fontsize=7, ha="left", va="center", xytext=(3, 0), textcoords="offset points",
                color=COLORS["theory"])
    ax.set(title=f"(b) width, depth 2 (d = {main['dim']})", xlabel="hidden width h")


ANIL_COLOR = "#ff7f0e"
SMALL_HEAD_COLOR = "#2ca02c"


def _gap_panel(ax, points: list[dict], main: dict, results: dict) -> None:
    """(d): at the narrow widths, meta-training from the default and from a small head, against the minima of
    the exact objective (descent from each run's own initialisation; the best found)."""
    maml = [p for p in points if p["panel"] == "gap:maml"]
    small = [p for p in points if p["panel"] == "gap:small-head"]
    _series(ax, maml, COLORS["deep"], "meta-trained, default init (mean, 95% CI)", offset=0.94)
    _series(ax, small, SMALL_HEAD_COLOR, f"meta-trained, head init × {results['small_head']:g}", offset=1.06)
    for series, color, shift in ((maml, COLORS["deep"], 0.94), (small, SMALL_HEAD_COLOR, 1.06)):
        have = [p for p in series if p["descent_from_init"] is not None]
        ax.plot([p["x"] * shift for p in have], [p["descent_from_init"] for p in have], "x", color=color,
                markersize=8, label="L-BFGS on the exact loss from the same inits (mean)" if color == COLORS["deep"]
                else "L-BFGS on the exact loss from the small-head inits (mean)")
    best = results["depth2_best"]
    ax.plot([b["width"] for b in best], [b["depth2_best_post_loss"] for b in best], "*", color=COLORS["deep"],
            markersize=11, fillstyle="none", label="best found (theory, exact loss)")
    draw_reference_losses(ax, main, keys=("shallow_best_post_loss", "preconditioned_best_post_loss"))
    widths = [b["width"] for b in best]
    ax.set_xscale("log", base=2)
    ax.set_xticks(widths, [f"{w:g}" for w in widths])
    ax.set(title="(d) narrow depth-2 nets: which minimum meta-training finds", xlabel="hidden width h")


def _series(ax, points: list[dict], color: str, label: str, offset: float = 1.0) -> None:
    """Error bars for the points with data; 'diverged' written where a point is missing."""
    points = sorted(points, key=lambda p: p["x"])
    ok = [p for p in points if p["post_loss"] is not None]
    ax.errorbar([p["x"] * offset for p in ok], [p["post_loss"] for p in ok], yerr=[p["post_ci95"] for p in ok],
                color=color, marker="o", capsize=3, label=label)
    for p in points:
        if p["post_loss"] is None:
            ax.annotate("diverged", (p["x"], 0.02), color=color, fontsize=7, ha="center", rotation=90)
def _ratio_panel(ax, points: list[dict], results: dict) -> None:
    """Panel (c): shallow and deep against d/K, with the closed forms as curves in d."""
    theory = sorted(results["theory"], key=lambda t: t["dim"])
    k, r = results["support"], results["rank"]
    dims = np.geomspace(min(t["dim"] for t in theory), max(t["dim"] for t in theory), 100)
    # pre-adaptation r/2 and optimal preconditioner ½r(r+1)/(K+r+1) are the same for every d (Σw = UUᵀ);
    # the best shallow step L_pre (d+1)/(K+d+1) is a curve in d, drawn in its level's style
    draw_reference_losses(ax, theory[0], keys=("pre_adaptation_loss",))
    shallow = REFERENCE_STYLE["shallow_best_post_loss"]
    pre_loss = theory[0]["pre_adaptation_loss"]
    ax.plot(dims / k, pre_loss * (dims + 1) / (k + dims + 1), linewidth=REFERENCE_LINEWIDTH, **shallow)
    ax.plot([t["d_over_k"] for t in theory], [t["shallow_best_post_loss"] for t in theory], "x",
            color=shallow["color"])
    draw_reference_losses(ax, theory[0], keys=("preconditioned_best_post_loss",))
    _series(ax, [p for p in points if p["panel"] == "ratio:shallow"], COLORS["shallow"],
            "shallow (MAML-trained)")
    _series(ax, [p for p in points if p["panel"] == "ratio:deep"], COLORS["deep"],
            f"depth {results['deep_depth']}, width {results['width']} (MAML-trained)")
    ax.set_xscale("log", base=2)
    ticks = sorted({t["d_over_k"] for t in theory})
    ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
    ax.set(title=f"(c) input dimension, K = {k}, r = {r}, α = α*(d)", xlabel="d / K")


def _num(value) -> str:
    return "diverged" if value is None else f"{value:.3f}"


def caption(results: dict) -> str:
    """One paragraph with the measured numbers, for the README; the width-gap sentence follows from them."""
    pts = summarize(results)
    main = {t["dim"]: t for t in results["theory"]}[results["main_dim"]]

    def series(panel):
        return ", ".join(f"{p['x']:g}: {_num(p['post_loss'])}" for p in pts if p["panel"] == panel)

    shallow = next(p for p in pts if p["panel"] == "depth" and p["x"] == 1)
    deep2 = next((p for p in pts if p["panel"] == "depth" and p["x"] == 2), None)
    ratio = {(p["panel"], p["x"]): p for p in pts if p["panel"].startswith("ratio")}
    top = max(x for _, x in ratio)
    diverged = sum(1 for r in results["runs"] if r["post_loss"] is None)
    last = max(results["theory"], key=lambda t: t["dim"])
    anil_best = ", ".join(f"{a['width']}: {a['anil_best_post_loss']:.3f}" for a in results["anil_best"]
                          if a["width"] in {b["width"] for b in results["depth2_best"]})
    best = {b["width"]: b["depth2_best_post_loss"] for b in results["depth2_best"]}
    surrogate = ", ".join(f"{p['x']:g}: {_num(p['surrogate_at_trained'])}" for p in pts
                          if p["panel"] == "depth" and p["surrogate_at_trained"] is not None)
    exact2 = (f"; at depth 2 the exact loss at the trained weights is {_num(deep2['closed_form_at_trained'])} "
              f"(meta-trained {_num(deep2['post_loss'])})" if deep2 else "")
    return (f"d = {main['dim']}, K = {results['support']}, r = {results['rank']}, α = α* = "
            f"{main['alpha']:.3f}: post-adaptation loss by depth (width {results['width']}) "
            f"{series('depth')} (depth 1 against the closed form at its own trained θ: "
            f"{_num(shallow['post_loss'])} vs {_num(shallow['closed_form_at_trained'])}{exact2}; first-order "
            f"surrogate at the trained weights, an approximation: {surrogate}). "
            f"By width (depth 2), full MAML {series('width')}; ANIL {series('width:anil')}. Theory: best shallow "
            f"step {main['shallow_best_post_loss']:.3f}, optimal preconditioner "
            f"{main['preconditioned_best_post_loss']:.3f}, pre-adaptation {main['pre_adaptation_loss']:.3f}; "
            f"ANIL's best at width h (closed form) {anil_best}; full MAML's best found on the exact depth-2 loss "
            f"{', '.join(f'{h}: {v:.3f}' for h, v in best.items())}. {_gap_sentence(pts, best, results)} "
            f"At d/K = {top:g} the shallow model keeps {_num(ratio[('ratio:shallow', top)]['post_loss'])} "
            f"(theory {last['shallow_best_post_loss']:.3f}) and the deep one "
            f"{_num(ratio[('ratio:deep', top)]['post_loss'])}; {diverged} of {len(results['runs'])} runs diverged.")


REACHED = 0.03  # a meta-trained mean within this (absolute) of a minimum's value counts as reaching it


def _gap_sentence(pts: list[dict], best: dict[int, float], results: dict) -> str:
    """Why narrow nets stop short, from the numbers: the width (the optimum itself is high) or optimisation
    (the optimum is lower, the default initialisation's descent stops above it, a small head reaches it)."""
    maml = {p["x"]: p for p in pts if p["panel"] == "gap:maml"}
    small = {p["x"]: p for p in pts if p["panel"] == "gap:small-head"}
    parts = []
    for h in sorted(best):
        m, s = maml.get(h), small.get(h)
        if m is None or m["post_loss"] is None:
            continue
        if m["post_loss"] <= best[h] + REACHED:
            parts.append(f"at width {h} meta-training reaches the optimum ({_num(m['post_loss'])} vs {best[h]:.3f})")
            continue
        stuck = m["descent_from_init"] is not None and m["descent_from_init"] > best[h] + 0.01
        reached = s is not None and s["post_loss"] is not None and s["post_loss"] <= best[h] + REACHED
        text = (f"at width {h} meta-training ends at {_num(m['post_loss'])} but {best[h]:.3f} is reachable, so the "
                f"gap is optimisation, not width")
        if stuck:
            text += (f": L-BFGS on the exact loss from the same initialisations stops at a local minimum, "
                     f"{_num(m['descent_from_init'])}")
        if s is not None:
            text += (f"; with the head initialised × {results['small_head']:g} meta-training reaches "
                     f"{_num(s['post_loss'])}" + ("" if reached else " (still short)")
                     + (f" and L-BFGS {_num(s['descent_from_init'])}" if s["descent_from_init"] is not None else ""))
        parts.append(text)
    return ("Narrow widths: " + "; ".join(parts) + ".") if parts else ""
