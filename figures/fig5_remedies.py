"""Figure 5, the remedies: shallow and deep models × {plain, + linear layers (LinNet), + KFO},
on regression and classification; post-adaptation loss (and accuracy), mean and 95% interval
over seeds, with the regression theory lines (best shallow step, optimal preconditioner)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.checkpoint import run_units
from figures.common import Profiles, draw_reference_losses, mean_ci95
from figures.reproduction import EXACT, KEY, TRAINED, spread
from simulations.maml import InnerLoop
from simulations.model_zoo import ZooSpec, build_model
from simulations.tasks import sample_classification_tasks, sample_regression_tasks
from simulations.training import evaluate, meta_train_runs
from theory.ground.errors import DivergenceError
from theory.shallow_maml import optimal_step_size, reference_losses
from theory.task_family import LinearTaskFamily

BASES = ("shallow", "deep")
REMEDIES = {"plain": "plain", "+ linear layers": "linnet", "+ KFO": "kfo"}
COLORS = {"plain": "#7f7f7f", "+ linear layers": "#1f77b4", "+ KFO": "#2ca02c"}


def zoo_name(base: str, remedy: str) -> str:
    """shallow/deep × plain/linnet/kfo -> the simulations.model_zoo name."""
    names = {("shallow", "plain"): "shallow", ("shallow", "linnet"): "linnet", ("shallow", "kfo"): "kfo",
             ("deep", "plain"): "deep", ("deep", "linnet"): "deep-linnet", ("deep", "kfo"): "deep-kfo"}
    return names[(base, remedy)]


@dataclass(frozen=True)
class Config(Profiles):
    dim: int = 20  # d ≫ K so the shallow model fails
    support: int = 5  # K
    query: int = 10  # Q
    rank: int = 2  # r
    depth: int = 2  # the deep model: depth 2, width 16 (enough to precondition, cheap)
    width: int = 16
    linnet_layers: int = 2
    kfo_form: str = "linear"
    classification_alpha: float = 0.5  # as in figure 1
    iterations: int = 300
    meta_batch: int = 32
    meta_lr: float = 0.01
    eval_tasks: int = 2000
    seeds: int = 3

    FULL: ClassVar[dict] = {"iterations": 3000, "eval_tasks": 10_000, "seeds": 10}


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "task": KEY, "base": KEY, "remedy": KEY, "metric": KEY,
    "mean": TRAINED, "ci95": spread("mean"),  # float64 meta-training (Adam), then evaluation on seeded tasks
    "seeds": EXACT, "diverged_seeds": EXACT,
}


def _run(config: Config, task: str, name: str, seeds: list[int], family: LinearTaskFamily, alpha: float) -> list[dict]:
    """One setting's runs, one per seed, meta-trained at once (simulations.training.meta_train_runs); each
    evaluated on the same fresh tasks; a diverged run: {"diverged": the message}."""
    classify = task == "classification"
    inner = InnerLoop(alpha, loss="logistic" if classify else "squared")
    draw = sample_classification_tasks if classify else sample_regression_tasks

    def sampler(n, gen):
        return draw(family, n, gen)

    spec = ZooSpec(config.dim, config.depth, config.width, config.linnet_layers, config.kfo_form)
    built = [build_model(name, spec, seed=seed) for seed in seeds]
    models, transforms = [m for m, _ in built], [t for _, t in built]
    trained = meta_train_runs(models, sampler, inner, config.iterations, [seed + 1 for seed in seeds],
                              config.meta_batch, config.meta_lr, transforms if transforms[0] is not None else None)
    out = []
    for model, result in zip(models, trained):
        try:
            if isinstance(result, DivergenceError):
                raise result
            est = evaluate(model, result.params, sampler, inner, config.eval_tasks, seed=777,
                           transform=result.transform, with_accuracy=classify)
        except (DivergenceError, FloatingPointError) as err:
            out.append({"diverged": str(err)})
            continue
        out.append({metric: e.mean for metric, e in est.items()})
    return out


def _family(config: Config, seed: int) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(config.dim, config.support, config.query, rank=config.rank, seed=seed)


def _alphas(config: Config, family: LinearTaskFamily) -> dict[str, float]:
    return {"regression": optimal_step_size(family), "classification": config.classification_alpha}


def _settings(config: Config):
    """(unit key, task, base, remedy label, zoo remedy) of every setting, in the figure's order."""
    for task in ("regression", "classification"):
        for base in BASES:
            for label, remedy in REMEDIES.items():
                yield f"{task}/{base}/{remedy}", task, base, label, remedy


def _seeds(config: Config, seed: int) -> list[int]:
    """Each run's seed (its initialisation; its task draws use seed + 1)."""
    return [seed + 100 * s for s in range(config.seeds)]


def units(config: Config, seed: int = 0) -> dict[str, Callable[[], list[dict]]]:
    """One setting per task, base and remedy, its seeds' runs at once: key -> a picklable zero-argument callable."""
    family = _family(config, seed)
    alphas = _alphas(config, family)
    return {key: partial(_run, config, task, zoo_name(base, remedy), _seeds(config, seed), family, alphas[task])
            for key, task, base, _, remedy in _settings(config)}


def assemble(config: Config, seed: int, done: dict[str, list[dict]]) -> dict:
    family = _family(config, seed)
    runs = [{"task": task, "base": base, "remedy": label, "seed": run_seed, **result}
            for key, task, base, label, _ in _settings(config)
            for run_seed, result in zip(_seeds(config, seed), done[key])]
    theory = {"dim": config.dim, "support": config.support, "rank": config.rank,
              "alpha": _alphas(config, family)["regression"], **reference_losses(family)}
    return {"runs": runs, "theory": theory}


def compute(config: Config, seed: int = 0, progress=None) -> dict:
    return assemble(config, seed, run_units(progress, units(config, seed)))


def n_units(config: Config) -> int:
    """Progress units (one per setting, its seeds meta-trained at once)."""
    return 2 * len(BASES) * len(REMEDIES)


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
