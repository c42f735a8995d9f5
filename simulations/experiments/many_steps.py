"""Figure 8's numbers: how many plain steps (each at its own α*_k) make one optimally preconditioned step, in
closed form, with meta-trained shallow MAML at a few step counts and the Bayes floor.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from simulations.maml import InnerLoop
from simulations.models import shallow_linear
from simulations.tasks import sample_regression_tasks
from simulations.training import evaluate, meta_train
from theory.bayes_floor import bayes_optimal_loss
from theory.ground.errors import DivergenceError
from theory.preconditioned_maml import preconditioned_best_post_loss
from theory.shallow_maml import optimal_step_size, post_adaptation_loss, pre_adaptation_loss
from theory.task_family import LinearTaskFamily


@dataclass(frozen=True)
class Settings:
    """Figure 8's setting: the dimensions and ratios, the step counts and meta-training."""

    support: int = 5  # K
    query: int = 20  # Q
    rank: int = 2  # r ≪ d: the task subspace a preconditioner can find
    task_var: float = 1.0  # σ², variance per task direction
    noise_var: float = 0.25  # s² > 0, so the Bayes floor is above 0 (noiseless with K ≥ r it is exactly 0)
    dims: tuple[int, ...] = (3, 5, 10, 50)  # panel (a): d/K = 0.6, 1, 2, 10 (r = 2 ≤ d)
    k_max: int = 50  # plain inner steps, 1 … k_max
    ratios: tuple[float, ...] = (0.4, 0.6, 0.8, 1.0, 1.2, 2.0)  # panel (b): d/K
    sim_steps: tuple[int, ...] = (1, 5)  # meta-trained shallow MAML at these k
    iterations: int = 200  # meta-training iterations per run (θ only: a convex problem, settles fast)
    meta_batch: int = 32
    meta_lr: float = 0.02
    eval_tasks: int = 2000  # fresh evaluation tasks per run
    seeds: int = 3  # independent runs for the 95% interval


def _family(config: Settings, dim: int, seed: int = 0) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(dim, config.support, config.query, rank=config.rank,
                                     noise_var=config.noise_var, task_scale=config.task_var**0.5, seed=seed)


def _best_curve(family: LinearTaskFamily, k_max: int) -> tuple[list[float], list[float]]:
    """(α*_k, best k-step loss) for k = 1 … k_max: the loss at θ = μ and its own optimal step, each α searched once."""
    alphas = [optimal_step_size(family, k) for k in range(1, k_max + 1)]
    return alphas, [post_adaptation_loss(family, family.task_mean, a, k) for k, a in enumerate(alphas, 1)]


def _theory(config: Settings, dim: int) -> dict:
    """The closed forms at one d: the k-step curve, its steps, the preconditioned step and the floor."""
    family = _family(config, dim)
    alphas, curve = _best_curve(family, config.k_max)
    precond = preconditioned_best_post_loss(family)
    floor = bayes_optimal_loss(family)
    return {"dim": dim, "d_over_k": dim / config.support, "best_k_step": curve, "optimal_alpha": alphas,
            "pre_adaptation_loss": pre_adaptation_loss(family, family.task_mean),
            "preconditioned_best_post_loss": precond, "steps_to_match": _steps_to_match(curve, precond),
            "bayes_optimal_loss": floor.value, "bayes_ci95": floor.ci95, "bayes_method": floor.method}


def _steps_to_match(curve: list[float], level: float) -> int | None:
    """The first k whose best k-step loss is at or below ``level`` (None: not within the curve)."""
    return next((k for k, value in enumerate(curve, 1) if value <= level), None)


def _run(config: Settings, dim: int, steps: int, seed: int) -> dict:
    """Meta-train the shallow model's θ with k-step MAML at α*_k; evaluate on fresh tasks."""
    family = _family(config, dim, seed)
    inner = InnerLoop(optimal_step_size(family, steps), steps)
    sampler = partial(sample_regression_tasks, family)  # (n_tasks, generator) -> TaskBatch
    model = shallow_linear(dim, seed=seed)
    try:
        trained = meta_train(model, sampler, inner, config.iterations, config.meta_batch, config.meta_lr,
                             seed=seed + 1, lr_decay=True)
        est = evaluate(model, trained.params, sampler, inner, config.eval_tasks, seed=seed + 2)["post_loss"]
    except (DivergenceError, FloatingPointError) as err:
        return {"post_loss": None, "note": f"diverged: {err}"}
    return {"post_loss": est.mean, "note": ""}


def _run_keys(config: Settings, seed: int):
    """(unit key, d, k, run seed) of every meta-training run, in the figure's order."""
    for d in config.dims:
        for k in config.sim_steps:
            for s in range(config.seeds):
                yield f"run/{d}/{k}/{s}", d, k, seed + 100 * s


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    """The closed forms per d, the panel (b) points and the meta-training runs: key -> a picklable callable."""
    return ({f"theory/{d}": partial(_theory, config, d) for d in config.dims}
            | {f"ratio/{ratio}": partial(_ratio_point, config, ratio) for ratio in config.ratios}
            | {key: partial(_run, config, d, k, run_seed) for key, d, k, run_seed in _run_keys(config, seed)})


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    runs = [{"dim": d, "steps": k, "seed": run_seed, **done[key]} for key, d, k, run_seed in _run_keys(config, seed)]
    return {"theory": [done[f"theory/{d}"] for d in config.dims],
            "ratio_steps": [{"d_over_k": r, **done[f"ratio/{r}"]} for r in config.ratios], "runs": runs,
            "support": config.support, "rank": config.rank, "task_var": config.task_var,
            "noise_var": config.noise_var, "k_max": config.k_max}


def _ratio_point(config: Settings, ratio: float) -> dict:
    """Panel (b): plain steps needed to match one preconditioned step at d = ratio·K."""
    family = _family(config, max(config.rank, round(ratio * config.support)))
    precond = preconditioned_best_post_loss(family)
    _, curve = _best_curve(family, config.k_max)
    return {"dim": family.dim, "steps_to_match": _steps_to_match(curve, precond)}
