"""Figure 1's numbers, the failure mode: post-adaptation loss against meta-training iterations.

Linear regression (shallow, deep, LinNet, KFO) and binary classification (logistic regression ± LinNet ± KFO)
on one task family; each setting's seeds meta-trained at once (simulations.training.meta_train_runs), the
post-adaptation loss (and accuracy) on fixed evaluation tasks every ``eval_every`` iterations, and the theory
levels of the regression panel at θ = μ.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from simulations.experiments.settings import CLASSIFICATION_ALPHA, PAPER
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
class Settings:
    """Figure 1's setting: the task family, the models, meta-training and evaluation."""

    dim: int = PAPER.dim  # d = 50 ≫ K: the regime where the shallow model fails (simulations.experiments.settings)
    support: int = PAPER.support  # K = 5
    query: int = PAPER.query  # Q = 20
    rank: int = PAPER.rank  # r = 2: tasks on a 2-dimensional subspace
    depth: int = 3  # deep model: 3 layers of width 64
    width: int = 64
    linnet_layers: int = 2  # LinNet adds two identity-initialised d×d layers
    kfo_form: str = "linear"  # KFO: U(G) = L G R per parameter, meta-learned with the init
    classification_alpha: float = CLASSIFICATION_ALPHA  # the logistic loss's inner step (no closed form picks it)
    iterations: int = 300  # meta-training iterations per run (quick: the gap is plain by 100; the full profile settles)
    eval_every: int = 50  # learning-curve resolution
    eval_tasks: int = 1000  # evaluation tasks per point, the same for every seed and model (paired)
    meta_batch: int = 32
    meta_lr: float = 0.01
    seeds: int = 3  # independent runs for the 95% interval


def _family(config: Settings, seed: int) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(config.dim, config.support, config.query, rank=config.rank, seed=seed)


def _panel(family: LinearTaskFamily, panel: str, config: Settings) -> tuple:
    """(sampler, inner loop) of a panel: regression at α = α*, classification at classification_alpha."""
    if panel == "regression":
        return partial(sample_regression_tasks, family), InnerLoop(optimal_step_size(family))
    return (partial(sample_classification_tasks, family),
            InnerLoop(config.classification_alpha, loss="logistic"))


def _curves(name: str, panel: str, family: LinearTaskFamily, config: Settings, seeds: list[int]) -> list[dict]:
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


def _seeds(config: Settings, seed: int) -> list[int]:
    return [seed + 100 * s for s in range(config.seeds)]  # each run's init and meta-training draws


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], list[dict]]]:
    """One setting per model and panel, its seeds' runs at once: key -> a picklable zero-argument callable."""
    family = _family(config, seed)
    return {key: partial(_curves, zoo_name, panel, family, config, _seeds(config, seed))
            for key, panel, _, zoo_name in _settings()}


def assemble(config: Settings, seed: int, done: dict[str, list[dict]]) -> dict:
    """Learning curves for every model and seed (from the finished units), and the theory lines of panel (a)."""
    family = _family(config, seed)
    runs = [{"panel": panel, "model": name, "seed": run_seed, **curve}
            for key, panel, name, _ in _settings() for run_seed, curve in zip(_seeds(config, seed), done[key])]
    theory = {"dim": config.dim, "support": config.support, "rank": config.rank,
              "alpha": optimal_step_size(family), **reference_losses(family)}
    return {"runs": runs, "theory": theory}
