"""Figure 5's numbers, the remedies: shallow and deep models × {plain, + linear layers (LinNet), + KFO} on
regression and classification, each setting's seeds meta-trained at once, evaluated on the same fresh tasks.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from simulations.experiments.settings import CLASSIFICATION_ALPHA
from simulations.maml import InnerLoop
from simulations.model_zoo import ZooSpec, build_model
from simulations.tasks import sample_classification_tasks, sample_regression_tasks
from simulations.training import evaluate, meta_train_runs
from theory.ground.errors import DivergenceError
from theory.shallow_maml import optimal_step_size, reference_losses
from theory.task_family import LinearTaskFamily

BASES = ("shallow", "deep")
REMEDIES = {"plain": "plain", "+ linear layers": "linnet", "+ KFO": "kfo"}


def zoo_name(base: str, remedy: str) -> str:
    """shallow/deep × plain/linnet/kfo -> the simulations.model_zoo name."""
    names = {("shallow", "plain"): "shallow", ("shallow", "linnet"): "linnet", ("shallow", "kfo"): "kfo",
             ("deep", "plain"): "deep", ("deep", "linnet"): "deep-linnet", ("deep", "kfo"): "deep-kfo"}
    return names[(base, remedy)]


@dataclass(frozen=True)
class Settings:
    """Figure 5's setting: the task family, the models, meta-training and evaluation."""

    dim: int = 20  # d ≫ K so the shallow model fails
    support: int = 5  # K
    query: int = 10  # Q
    rank: int = 2  # r
    depth: int = 2  # the deep model: depth 2, width 16 (enough to precondition, cheap)
    width: int = 16
    linnet_layers: int = 2
    kfo_form: str = "linear"
    classification_alpha: float = CLASSIFICATION_ALPHA  # as in figure 1 (simulations.experiments.settings)
    iterations: int = 300
    meta_batch: int = 32
    meta_lr: float = 0.01
    eval_tasks: int = 2000
    seeds: int = 3


def _run(config: Settings, task: str, name: str, seeds: list[int], family: LinearTaskFamily,
         alpha: float) -> list[dict]:
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


def _family(config: Settings, seed: int) -> LinearTaskFamily:
    return LinearTaskFamily.subspace(config.dim, config.support, config.query, rank=config.rank, seed=seed)


def _alphas(config: Settings, family: LinearTaskFamily) -> dict[str, float]:
    return {"regression": optimal_step_size(family), "classification": config.classification_alpha}


def _settings(config: Settings):
    """(unit key, task, base, remedy label, zoo remedy) of every setting, in the figure's order."""
    for task in ("regression", "classification"):
        for base in BASES:
            for label, remedy in REMEDIES.items():
                yield f"{task}/{base}/{remedy}", task, base, label, remedy


def _seeds(config: Settings, seed: int) -> list[int]:
    """Each run's seed (its initialisation; its task draws use seed + 1)."""
    return [seed + 100 * s for s in range(config.seeds)]


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], list[dict]]]:
    """One setting per task, base and remedy, its seeds' runs at once: key -> a picklable zero-argument callable."""
    family = _family(config, seed)
    alphas = _alphas(config, family)
    return {key: partial(_run, config, task, zoo_name(base, remedy), _seeds(config, seed), family, alphas[task])
            for key, task, base, _, remedy in _settings(config)}


def assemble(config: Settings, seed: int, done: dict[str, list[dict]]) -> dict:
    family = _family(config, seed)
    runs = [{"task": task, "base": base, "remedy": label, "seed": run_seed, **result}
            for key, task, base, label, _ in _settings(config)
            for run_seed, result in zip(_seeds(config, seed), done[key])]
    theory = {"dim": config.dim, "support": config.support, "rank": config.rank,
              "alpha": _alphas(config, family)["regression"], **reference_losses(family)}
    return {"runs": runs, "theory": theory}
