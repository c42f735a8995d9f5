"""Figure 3's numbers, depth and width: MAML-trained deep linear models against the exact theory.

Every run (d, depth, width, variant) is meta-trained with its seeds at once (simulations.training.meta_train_runs),
evaluated on fresh tasks, and held against its closed form at its own trained weights; per width, ANIL's
rank-h optimum (closed form) and the depth-2 full-MAML optimum (L-BFGS on the exact loss); per narrow width,
L-BFGS from each run's own initial weights. A run whose meta-training diverges is a record with a note, never data.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from simulations.maml import InnerLoop
from simulations.models import deep_linear
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train_runs
from theory.anil_width import anil_best_post_loss, anil_post_adaptation_loss
from theory.deep_linear import first_order_surrogate_loss
from theory.depth2_maml import depth2_best_post_loss, depth2_post_adaptation_loss
from theory.ground.errors import DivergenceError
from theory.shallow_maml import optimal_step_size, post_adaptation_loss, reference_losses
from theory.task_family import LinearTaskFamily

VARIANTS = ("maml", "anil", "small-head")  # full MAML; ANIL (head only); full MAML from a small head


@dataclass(frozen=True)
class Settings:
    """Figure 3's setting: the task family, the depths, widths and dimensions swept, and meta-training."""

    dim: int = 20  # d for panels (a), (b), (d): d/K = 4, where the shallow model keeps 81% of its loss
    support: int = 5  # K
    query: int = 20  # Q
    rank: int = 2  # r: tasks on a 2-dimensional subspace
    depths: tuple[int, ...] = (1, 2, 3, 5)  # panel (a); depth 1 is the shallow model (full profile: also 4)
    width: int = 16  # hidden width in (a) and of the deep model in (c)
    widths: tuple[int, ...] = (1, 2, 4, 16)  # panel (b), at depth 2 (full profile: also 8 and 32)
    anil_widths: tuple[int, ...] = (1, 2, 4)  # panel (b): ANIL meta-trained at these widths
    gap_widths: tuple[int, ...] = (1, 2, 4)  # panels (b) and (d): depth-2 optimum and descent from each init
    dims: tuple[int, ...] = (5, 10, 20, 80)  # panel (c): d/K = 1 … 16 (full profile: also 40)
    deep_depth: int = 2  # the deep model of panel (c)
    iterations: int = 600  # meta-training iterations per run (cosine-annealed, so the final iterate settles)
    meta_batch: int = 32
    meta_lr: float = 0.003  # Adam; at 0.01 depth-5 chains wander (meta-batch noise) instead of settling
    anil_meta_lr: float = 0.01  # ANIL's Adam step: at 0.003 a width-2 run can stall short of its optimum
    small_head: float = 0.1  # panel (d): the head's default initialisation times this (the bottom layer unchanged)
    restarts: int = 2  # seeded random L-BFGS starts of the depth-2 optimum (beside ANIL's optimum)
    eval_tasks: int = 4000  # fresh evaluation tasks per run
    seeds: int = 3  # independent runs for the 95% interval


def _settings(config: Settings) -> dict[tuple[int, int, int, str], list[tuple[str, float]]]:
    """Unique runs (d, depth, width, variant) -> the panel points (panel, x) they provide."""
    wanted: dict[tuple[int, int, int, str], list[tuple[str, float]]] = {}

    def want(key, panel, x):
        wanted.setdefault(key, []).append((panel, x))

    for depth in config.depths:
        want((config.dim, depth, config.width if depth > 1 else 1, "maml"), "depth", depth)
    for width in config.widths:
        want((config.dim, 2, width, "maml"), "width", width)
    for width in config.anil_widths:
        want((config.dim, 2, width, "anil"), "width:anil", width)
    for width in config.gap_widths:
        want((config.dim, 2, width, "maml"), "gap:maml", width)
        want((config.dim, 2, width, "small-head"), "gap:small-head", width)
    for d in config.dims:
        for model, depth in (("shallow", 1), ("deep", config.deep_depth)):
            want((d, depth, config.width if depth > 1 else 1, "maml"), f"ratio:{model}", d / config.support)
    return wanted


def _unit_key(dim: int, depth: int, width: int, variant: str) -> str:
    return f"{dim}/{depth}/{width}" + ("" if variant == "maml" else f"/{variant}")


def _family(config: Settings, dim: int, seed: int) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(dim, config.support, config.query, rank=config.rank, seed=seed)


def _layers(params: dict, model) -> list[np.ndarray]:
    return [params[f"layers.{i}.weight"].detach().numpy() for i in range(len(model.layers))]


def _runs(config: Settings, dim: int, depth: int, width: int, variant: str, seed: int) -> list[dict]:
    """Meta-train one setting's models, one per seed, at once (simulations.training.meta_train_runs); evaluate each
    on fresh tasks; the theory at its weights. A diverged run: a record with a note and no numbers."""
    family = _family(config, dim, seed)
    inner = InnerLoop(optimal_step_size(family), adapt="head" if variant == "anil" else "all")
    sampler = partial(sample_regression_tasks, family)  # (n_tasks, generator) -> TaskBatch
    models = [deep_linear(dim, depth, width, seed=seed + s) for s in range(config.seeds)]
    if variant == "small-head":
        with torch.no_grad():
            for model in models:
                model.layers[-1].weight.mul_(config.small_head)
    lr = config.anil_meta_lr if variant == "anil" else config.meta_lr
    seeds = [seed + 100 * s + 1 for s in range(config.seeds)]  # each run's task draws
    trained = meta_train_runs(models, sampler, inner, config.iterations, seeds, config.meta_batch, lr, lr_decay=True)
    return [_record(config, family, inner, sampler, model, result, variant, seed, s)
            for s, (model, result) in enumerate(zip(models, trained))]


def _record(config: Settings, family: LinearTaskFamily, inner: InnerLoop, sampler, model, trained, variant: str,
            seed: int, s: int) -> dict:
    """One run's record: its evaluation on fresh tasks and the theory at its initial and trained weights."""
    dim, depth, width = model.widths[0], len(model.layers), model.widths[1] if len(model.layers) > 1 else 1
    record = {"dim": dim, "depth": depth, "width": width, "variant": variant, "seed": seed + s, "post_loss": None,
              "pre_loss": None, "post_stderr": None, "closed_form_at_trained": None, "surrogate_at_trained": None,
              "descent_from_init": None, "note": ""}
    if depth == 2 and dim == config.dim and width in config.gap_widths and variant != "anil":
        initial = tuple(layer.weight.detach().numpy() for layer in model.layers)  # the models are not trained in place
        record["descent_from_init"] = depth2_best_post_loss(family, width, inner.alpha, restarts=0,
                                                            starts=[initial])[0]
    try:
        if isinstance(trained, DivergenceError):
            raise trained
        est = evaluate(model, trained.params, sampler, inner, n_tasks=config.eval_tasks,
                       seed=10_000 + seed + s)  # fresh tasks, a different set per seed
    except (DivergenceError, FloatingPointError) as err:
        record["note"] = f"diverged: {err}"
        return record
    record.update(post_loss=est["post_loss"].mean, pre_loss=est["pre_loss"].mean,
                  post_stderr=est["post_loss"].stderr)
    layers = _layers(trained.params, model)
    if depth == 1:  # the shallow model: the closed form at its own trained θ
        record["closed_form_at_trained"] = post_adaptation_loss(family, layers[0].reshape(dim), inner.alpha)
    elif variant == "anil":
        record["closed_form_at_trained"] = anil_post_adaptation_loss(family, layers[0], layers[1][0], inner.alpha)
    elif depth == 2:
        record["closed_form_at_trained"] = depth2_post_adaptation_loss(family, *layers, inner.alpha)
    if depth > 1 and variant != "anil":
        record["surrogate_at_trained"] = first_order_surrogate_loss(family, layers, inner.alpha)
    return record


def _width_optimum(config: Settings, width: int, seed: int) -> dict:
    """The depth-2 full-MAML optimum at this width (numerical, exact loss) next to ANIL's (closed form)."""
    family = _family(config, config.dim, seed)
    alpha = optimal_step_size(family)
    anil = anil_best_post_loss(family, width, alpha)
    value, _, _, method = depth2_best_post_loss(family, width, alpha, restarts=config.restarts, seed=seed,
                                                starts=[(anil.w, anil.v0.reshape(1, -1))])
    return {"width": width, "depth2_best_post_loss": value, "method": method,
            "anil_best_post_loss": anil.value}


def _theory(config: Settings, dim: int, seed: int) -> dict:
    family = _family(config, dim, seed)
    return {"dim": dim, "d_over_k": dim / config.support, "alpha": optimal_step_size(family),
            **reference_losses(family)}


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """Every unique (d, depth, width, variant) setting, its seeds' runs at once, and the depth-2 optimum per gap
    width: key -> a picklable zero-argument callable."""
    out = {_unit_key(dim, depth, width, variant): partial(_runs, config, dim, depth, width, variant, seed)
           for dim, depth, width, variant in _settings(config)}
    out.update({f"optimum/{width}": partial(_width_optimum, config, width, seed) for width in config.gap_widths})
    return out


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    """The runs (from the finished units), the panel points they feed, and the theory."""
    runs, points = [], []
    for (dim, depth, width, variant), uses in _settings(config).items():
        runs += done[_unit_key(dim, depth, width, variant)]
        points += [{"panel": panel, "x": x, "dim": dim, "depth": depth, "width": width, "variant": variant}
                   for panel, x in uses]
    theory = [_theory(config, d, seed) for d in sorted({config.dim, *config.dims})]
    family = _family(config, config.dim, seed)
    anil = [{"width": h, "anil_best_post_loss": anil_best_post_loss(family, h, optimal_step_size(family)).value}
            for h in sorted({*config.widths, *config.anil_widths})]
    return {"runs": runs, "points": points, "theory": theory, "main_dim": config.dim, "width": config.width,
            "deep_depth": config.deep_depth, "support": config.support, "rank": config.rank,
            "small_head": config.small_head, "anil_best": anil,
            "depth2_best": [done[f"optimum/{h}"] for h in config.gap_widths]}
