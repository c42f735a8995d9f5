"""Figure 1, the failure mode: post-adaptation loss against meta-training iterations.

(a) linear regression, shallow vs deep vs LinNet vs KFO, with the pre-adaptation loss and the
theory bounds (best shallow step, optimal preconditioner); (b, c) binary classification, logistic
regression vs logistic regression + LinNet vs + KFO. Mean and 95% interval over seeds.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np
import torch

from figures.checkpoint import run_units
from figures.common import COLORS, Profiles, draw_reference_losses, mean_ci95
from figures.reproduction import EXACT, KEY, TRAINED, spread
from simulations.maml import InnerLoop
from simulations.model_zoo import ZooSpec, build_model
from simulations.tasks import make_generator, sample_classification_tasks, sample_regression_tasks
from simulations.training import batched_task_losses, meta_train_runs
from theory.ground.errors import DivergenceError
from theory.shallow_maml import optimal_step_size, reference_losses
from theory.task_family import LinearTaskFamily

MODELS = {"regression": {"shallow": "shallow", "deep": "deep", "linnet": "linnet", "kfo": "kfo"},
          "classification": {"logr": "shallow", "logr+linnet": "linnet", "logr+kfo": "kfo"}}  # name -> zoo name


@dataclass(frozen=True)
class Config(Profiles):
    """Settings of figure 1; ``quick`` and ``full`` are the two profiles."""

    dim: int = 50  # d ≫ K: the regime where the shallow model fails
    support: int = 5  # K
    query: int = 20  # Q
    rank: int = 2  # r: tasks on a 2-dimensional subspace
    depth: int = 3  # deep model: 3 layers of width 64
    width: int = 64
    linnet_layers: int = 2  # LinNet adds two identity-initialised d×d layers
    kfo_form: str = "linear"  # KFO: U(G) = L G R per parameter, meta-learned with the init
    classification_alpha: float = 0.5  # inner step for logistic loss: no closed form picks it; at 0.5 one
    # LogR step still lowers the query loss (at 2.0 it raises it), so the baseline is not handicapped
    iterations: int = 300  # meta-training iterations per run (quick: the gap is plain by 100; the full profile settles)
    eval_every: int = 50  # learning-curve resolution
    eval_tasks: int = 1000  # evaluation tasks per point, the same for every seed and model (paired)
    meta_batch: int = 32
    meta_lr: float = 0.01
    seeds: int = 3  # independent runs for the 95% interval

    FULL: ClassVar[dict] = {"iterations": 3000, "eval_every": 100, "eval_tasks": 10_000, "seeds": 10}


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "panel": KEY, "model": KEY, "iteration": KEY, "metric": KEY,
    "mean": TRAINED, "ci95": spread("mean"),  # float64 meta-training (Adam), then evaluation on seeded tasks
    "seeds": EXACT,
}


def _family(config: Config, seed: int) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(config.dim, config.support, config.query, rank=config.rank, seed=seed)


def _panel(family: LinearTaskFamily, panel: str, config: Config) -> tuple:
    """(sampler, inner loop) of a panel: regression at α = α*, classification at classification_alpha."""
    if panel == "regression":
        return partial(sample_regression_tasks, family), InnerLoop(optimal_step_size(family))
    return (partial(sample_classification_tasks, family),
            InnerLoop(config.classification_alpha, loss="logistic"))


def _curves(name: str, panel: str, family: LinearTaskFamily, config: Config, seeds: list[int]) -> list[dict]:
    """Meta-train one zoo model per seed, at once (simulations.training.meta_train_runs); post-adaptation loss
    (and accuracy) on fixed tasks every eval_every. Run s: init and task draws at seeds[s]."""
    sampler, inner = _panel(family, panel, config)
    with_accuracy = panel == "classification"
    spec = ZooSpec(config.dim, config.depth, config.width, config.linnet_layers, config.kfo_form)
    built = [build_model(name, spec, seed=seed) for seed in seeds]
    models, transforms = [m for m, _ in built], [t for _, t in built]
    eval_batch = sampler(config.eval_tasks, make_generator(10_000))
    metrics = ("post_loss", "pre_loss") + (("post_accuracy",) if with_accuracy else ())
    curves = [{"iteration": [], **{m: [] for m in metrics}} for _ in seeds]

    def record(r, i, params, t_params):
        if i % config.eval_every and i != config.iterations:
            return
        with torch.no_grad():
            learned = transforms[r].with_params(t_params) if transforms[r] else None
            out = batched_task_losses(models[r], params, eval_batch, inner, learned, with_accuracy=with_accuracy)
        curves[r]["iteration"].append(i)
        for metric in metrics:
            curves[r][metric].append(out[metric].mean().item())

    trained = meta_train_runs(models, sampler, inner, config.iterations, seeds, config.meta_batch, config.meta_lr,
                              transforms if transforms[0] is not None else None, on_step=record)
    for result in trained:
        if isinstance(result, DivergenceError):
            raise result  # figure 1's settings do not diverge; should one, the figure stops and says so
    return curves


def _settings():
    """(unit key, panel, model name, zoo name) of every setting, in the figure's order."""
    for panel, models in MODELS.items():
        for name, zoo_name in models.items():
            yield f"{panel}/{name}", panel, name, zoo_name


def _seeds(config: Config, seed: int) -> list[int]:
    return [seed + 100 * s for s in range(config.seeds)]  # each run's init and meta-training draws


def units(config: Config, seed: int = 0) -> dict[str, Callable[[], list[dict]]]:
    """One setting per model and panel, its seeds' runs at once: key -> a picklable zero-argument callable."""
    family = _family(config, seed)
    return {key: partial(_curves, zoo_name, panel, family, config, _seeds(config, seed))
            for key, panel, _, zoo_name in _settings()}


def assemble(config: Config, seed: int, done: dict[str, list[dict]]) -> dict:
    """Learning curves for every model and seed (from the finished units), and the theory lines of panel (a)."""
    family = _family(config, seed)
    runs = [{"panel": panel, "model": name, "seed": run_seed, **curve}
            for key, panel, name, _ in _settings() for run_seed, curve in zip(_seeds(config, seed), done[key])]
    theory = {"dim": config.dim, "support": config.support, "rank": config.rank,
              "alpha": optimal_step_size(family), **reference_losses(family)}
    return {"runs": runs, "theory": theory}


def compute(config: Config, seed: int = 0, progress=None) -> dict:
    """Learning curves for every model and seed, and the theory lines of panel (a)."""
    return assemble(config, seed, run_units(progress, units(config, seed)))


def n_units(config: Config) -> int:
    """Progress units (one per setting, its seeds meta-trained at once)."""
    return sum(len(models) for models in MODELS.values())


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
