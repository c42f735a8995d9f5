"""Figure 3, depth and width: post-adaptation loss of MAML-trained deep linear models.

Subspace regression tasks (Σx = I, Σw = UUᵀ of rank r, s² = 0), one inner step at the shallow
model's α* = K/(K + d + 1) on every layer. (a) against depth at a fixed width; (b) against width
at depth 2; (c) against d/K (d varied at fixed K) for the shallow model and a depth-2 model.
Each point: mean and 95% interval over seeds of the evaluation on fresh tasks
(simulations.training.evaluate) after meta-training with Adam (simulations.training.meta_train).
Theory lines: the pre-adaptation loss at θ = μ, the shallow model's best one-step loss and the
optimal-preconditioner loss. Depth 1 is the shallow model: each of its runs also records the
closed form at its own trained θ, so its point can be held against theory exactly. A run whose
meta-training diverges is a missing point with a note, never data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.checkpoint import run_units
from figures.common import COLORS, REFERENCE_LINEWIDTH, REFERENCE_STYLE, Profiles, draw_reference_losses, mean_ci95
from simulations.maml import InnerLoop
from simulations.models import deep_linear
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train
from theory.errors import DivergenceError
from theory.shallow_maml import REFERENCE_LOSSES, optimal_step_size, post_adaptation_loss, reference_losses
from theory.task_family import LinearTaskFamily

PANELS = ("depth", "width", "ratio")


@dataclass(frozen=True)
class Config(Profiles):
    """Settings of figure 3; ``quick`` and ``full`` are the two profiles."""

    dim: int = 20  # d for panels (a) and (b): d/K = 4, where the shallow model keeps 81% of its loss
    support: int = 5  # K
    query: int = 20  # Q
    rank: int = 2  # r: tasks on a 2-dimensional subspace
    depths: tuple[int, ...] = (1, 2, 3, 4, 5)  # panel (a); depth 1 is the shallow model
    width: int = 16  # hidden width in (a) and of the deep model in (c)
    widths: tuple[int, ...] = (1, 2, 4, 8, 16, 32)  # panel (b), at depth 2
    dims: tuple[int, ...] = (5, 10, 20, 40, 80)  # panel (c): d/K = 1 … 16
    deep_depth: int = 2  # the deep model of panel (c)
    iterations: int = 600  # meta-training iterations per run (cosine-annealed, so the final iterate settles)
    meta_batch: int = 32
    meta_lr: float = 0.003  # Adam; at 0.01 depth-5 chains wander (meta-batch noise) instead of settling
    eval_tasks: int = 4000  # fresh evaluation tasks per run
    seeds: int = 3  # independent runs for the 95% interval

    FULL: ClassVar[dict] = {"iterations": 2000, "meta_batch": 64, "eval_tasks": 20_000, "seeds": 10}


def _settings(config: Config) -> dict[tuple[int, int, int], list[tuple[str, float]]]:
    """Unique runs (d, depth, width) -> the panel points (panel, x) they provide."""
    wanted: dict[tuple[int, int, int], list[tuple[str, float]]] = {}
    for depth in config.depths:
        wanted.setdefault((config.dim, depth, config.width if depth > 1 else 1), []).append(("depth", depth))
    for width in config.widths:
        wanted.setdefault((config.dim, 2, width), []).append(("width", width))
    for d in config.dims:
        for model, depth in (("shallow", 1), ("deep", config.deep_depth)):
            key = (d, depth, config.width if depth > 1 else 1)
            wanted.setdefault(key, []).append((f"ratio:{model}", d / config.support))
    return wanted


def _family(config: Config, dim: int, seed: int) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(dim, config.support, config.query, rank=config.rank, seed=seed)


def _run(config: Config, dim: int, depth: int, width: int, seed: int, s: int) -> dict:
    """Meta-train one model and evaluate it on fresh tasks; divergence gives a note, no numbers."""
    family = _family(config, dim, seed)
    inner = InnerLoop(optimal_step_size(family))
    sampler = partial(sample_regression_tasks, family)  # (n_tasks, generator) -> TaskBatch
    model = deep_linear(dim, depth, width, seed=seed + s)
    record = {"dim": dim, "depth": depth, "width": width, "seed": seed + s, "post_loss": None,
              "pre_loss": None, "post_stderr": None, "closed_form_at_trained": None, "note": ""}
    try:
        trained = meta_train(model, sampler, inner, config.iterations, config.meta_batch, config.meta_lr,
                             seed=seed + 100 * s + 1, lr_decay=True)
        est = evaluate(model, trained.params, sampler, inner, n_tasks=config.eval_tasks,
                       seed=10_000 + seed + s)  # fresh tasks, a different set per seed
    except (DivergenceError, FloatingPointError) as err:
        record["note"] = f"diverged: {err}"
        return record
    record.update(post_loss=est["post_loss"].mean, pre_loss=est["pre_loss"].mean,
                  post_stderr=est["post_loss"].stderr)
    if depth == 1:  # the shallow model: the closed form at its own trained θ
        theta = trained.params[model.head_name].numpy().reshape(dim)
        record["closed_form_at_trained"] = post_adaptation_loss(family, theta, inner.alpha)
    return record


def _theory(config: Config, dim: int, seed: int) -> dict:
    family = _family(config, dim, seed)
    return {"dim": dim, "d_over_k": dim / config.support, "alpha": optimal_step_size(family),
            **reference_losses(family)}


def units(config: Config, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """Every unique (d, depth, width) run for every seed: key -> a picklable zero-argument callable."""
    return {f"{dim}/{depth}/{width}/{s}": partial(_run, config, dim, depth, width, seed, s)
            for dim, depth, width in _settings(config) for s in range(config.seeds)}


def assemble(config: Config, seed: int, done: dict[str, dict]) -> dict:
    """The runs (from the finished units), the panel points they feed, and the theory."""
    runs, points = [], []
    for (dim, depth, width), uses in _settings(config).items():
        runs += [done[f"{dim}/{depth}/{width}/{s}"] for s in range(config.seeds)]
        points += [{"panel": panel, "x": x, "dim": dim, "depth": depth, "width": width} for panel, x in uses]
    theory = [_theory(config, d, seed) for d in sorted({config.dim, *config.dims})]
    return {"runs": runs, "points": points, "theory": theory, "main_dim": config.dim, "width": config.width,
            "deep_depth": config.deep_depth, "support": config.support, "rank": config.rank}


def compute(config: Config, seed: int = 0, progress=None) -> dict:
    """Every unique (d, depth, width) run for every seed, the panel points they feed, and the theory."""
    return assemble(config, seed, run_units(progress, units(config, seed)))


def n_units(config: Config) -> int:
    """Progress units (one per meta-training run)."""
    return len(_settings(config)) * config.seeds


def summarize(results: dict) -> list[dict]:
    """One row per panel point, by panel and x: mean and 95% interval over the seeds that did not diverge."""
    out, setting = [], lambda r: (r["dim"], r["depth"], r["width"])
    order = lambda p: (PANELS.index(p["panel"].split(":")[0]), p["panel"], p["x"])  # noqa: E731
    for p in sorted(results["points"], key=order):
        runs = [r for r in results["runs"] if setting(r) == setting(p)]
        ok = [r for r in runs if r["post_loss"] is not None]
        post = mean_ci95([r["post_loss"] for r in ok]) if ok else (None, None)
        pre_loss = mean_ci95([r["pre_loss"] for r in ok]) if ok else (None, None)
        closed = [r["closed_form_at_trained"] for r in ok if r["closed_form_at_trained"] is not None]
        out.append({**p, "post_loss": post[0], "post_ci95": post[1], "pre_loss": pre_loss[0],
                    "pre_ci95": pre_loss[1],
                    "closed_form_at_trained": float(np.mean(closed)) if closed else None,
                    "seeds": len(ok), "diverged": len(runs) - len(ok),
                    "note": "; ".join(r["note"] for r in runs if r["note"])})
    return out


def rows(results: dict) -> list[dict]:
    """CSV: one row per panel point (a missing mean is left empty), then the theory per d."""
    keys = ("panel", "x", "dim", "depth", "width", "post_loss", "post_ci95", "pre_loss", "pre_ci95",
            "closed_form_at_trained", "seeds", "diverged", "note")
    out = [{k: ("" if p[k] is None else p[k]) for k in keys} for p in summarize(results)]
    for t in results["theory"]:
        for key in ("alpha", *REFERENCE_LOSSES):
            out.append({**dict.fromkeys(keys, ""), "panel": "theory", "x": t["d_over_k"], "dim": t["dim"],
                        "post_loss": t[key], "note": key})
    return out


def plot(results: dict):
    points = summarize(results)
    theory = {t["dim"]: t for t in results["theory"]}
    main = theory[results["main_dim"]]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
    specs = [(axes[0], "depth", "deep", f"(a) depth, width {results['width']} (d = {main['dim']})",
              "depth L"),
             (axes[1], "width", "deep", f"(b) width, depth 2 (d = {main['dim']})", "hidden width h")]
    for ax, panel, color, title, xlabel in specs:
        draw_reference_losses(ax, main)
        _series(ax, [p for p in points if p["panel"] == panel], COLORS[color], "MAML-trained (mean, 95% CI)")
        ax.set(title=title, xlabel=xlabel)
    widths = [p["x"] for p in points if p["panel"] == "width"]
    axes[1].set_xscale("log", base=2)
    axes[1].set_xticks(widths, [f"{w:g}" for w in widths])
    axes[1].axvline(results["rank"], color=COLORS["theory"], linewidth=0.8, alpha=0.6)
    axes[1].annotate(f"h = r = {results['rank']}", (results["rank"], 1.07 * main["pre_adaptation_loss"]),
                     fontsize=7, ha="left", va="center",
                     xytext=(3, 0), textcoords="offset points", color=COLORS["theory"])
    axes[0].set_xticks([p["x"] for p in points if p["panel"] == "depth"])
    axes[0].annotate("depth 1 = shallow model", (1, main["shallow_best_post_loss"]), xytext=(8, 12),
                     textcoords="offset points", fontsize=7.5)
    _ratio_panel(axes[2], points, results)
    for ax in axes:
        ax.set(ylabel="post-adaptation query loss (½ MSE)", ylim=(0, 1.15 * main["pre_adaptation_loss"]))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower left" if ax is not axes[2] else "lower right", framealpha=0.9)
    fig.tight_layout()
    return fig


def _series(ax, points: list[dict], color: str, label: str) -> None:
    """Error bars for the points with data; 'diverged' written where a point is missing."""
    points = sorted(points, key=lambda p: p["x"])
    ok = [p for p in points if p["post_loss"] is not None]
    ax.errorbar([p["x"] for p in ok], [p["post_loss"] for p in ok], yerr=[p["post_ci95"] for p in ok],
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
    """One line with the measured numbers, for the README."""
    pts = summarize(results)
    main = {t["dim"]: t for t in results["theory"]}[results["main_dim"]]

    def series(panel):
        return ", ".join(f"{p['x']:g}: {_num(p['post_loss'])}" for p in pts if p["panel"] == panel)

    shallow = next(p for p in pts if p["panel"] == "depth" and p["x"] == 1)
    ratio = {(p["panel"], p["x"]): p for p in pts if p["panel"].startswith("ratio")}
    top = max(x for _, x in ratio)
    diverged = sum(1 for r in results["runs"] if r["post_loss"] is None)
    last = max(results["theory"], key=lambda t: t["dim"])
    return (f"d = {main['dim']}, K = {results['support']}, r = {results['rank']}, α = α* = "
            f"{main['alpha']:.3f}: post-adaptation loss by depth (width {results['width']}) "
            f"{series('depth')}; "
            f"by width (depth 2) {series('width')} (theory: best shallow step "
            f"{main['shallow_best_post_loss']:.3f}, optimal preconditioner "
            f"{main['preconditioned_best_post_loss']:.3f}, pre-adaptation {main['pre_adaptation_loss']:.3f}; "
            f"depth 1 against the closed form at its own trained θ: {_num(shallow['post_loss'])} vs "
            f"{_num(shallow['closed_form_at_trained'])}). At d/K = {top:g} the shallow model keeps "
            f"{_num(ratio[('ratio:shallow', top)]['post_loss'])} "
            f"(theory {last['shallow_best_post_loss']:.3f}) "
            f"and the deep one {_num(ratio[('ratio:deep', top)]['post_loss'])}; {diverged} of "
            f"{len(results['runs'])} runs diverged.")
