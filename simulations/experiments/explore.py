"""The failure mode for one setting: theory next to meta-trained models and their remedies.

``explore`` is the engine behind ``paper_repro.py explore``: it builds the subspace task
family, evaluates the closed forms at the MAML-optimal initialisation θ* = μ (regression),
and (unless theory_only) meta-trains each named model (simulations.model_zoo: shallow, deep,
LinNet, each optionally with KFO) with functional MAML and evaluates it on fresh tasks.
For classification (y = sign(w_τᵀx), logistic loss) no closed form exists: theory values are
None and the default step is 0.5.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from simulations.maml import InnerLoop
from simulations.model_zoo import ZooSpec, build_model, parse_models
from simulations.tasks import sample_classification_tasks, sample_regression_tasks
from simulations.training import evaluate, meta_train
from theory import preconditioned_maml as pre
from theory import shallow_maml as sh
from theory.errors import DivergenceError, NoClosedForm, ParameterError, require_int, require_real
from theory.task_family import LinearTaskFamily

TASKS = ("regression", "classification")
CLASSIFICATION_ALPHA = 0.5  # no closed form picks α for the logistic loss; one LogR step still helps at 0.5


@dataclass(frozen=True)
class ExploreConfig:
    """One setting of the linear-regression failure mode; defaults show it in under a minute."""

    dim: int = 50  # d: the shallow model's failure grows with d/K
    support: int = 5  # K: few shots, so d ≫ K
    query: int = 20  # Q: query points per task for the meta-loss
    rank: int = 2  # r: tasks on a 2-dimensional subspace, which a preconditioner can find
    noise: float = 0.0  # s²: noiseless labels, so the gap is all adaptation
    alpha: float | None = None  # α: None takes the shallow model's optimal step α*
    steps: int = 1  # k: one inner step, where every closed form is exact
    depth: int = 3  # L of the deep model
    width: int = 64  # hidden width of the deep model
    linnet_layers: int = 2  # identity-initialised d×d layers LinNet adds before the output
    iterations: int = 2000  # meta-training iterations per model (deep reaches ~0.41 of 0.375 by 3000)
    meta_batch: int = 32  # tasks per meta-iteration
    meta_lr: float = 0.01  # Adam's learning rate for the outer loop
    eval_tasks: int = 2000  # fresh tasks for the reported means and intervals
    seed: int = 0  # tasks, subspace and initialisations
    task: str = "regression"  # or "classification": y = sign(w_τᵀx), logistic loss
    models: tuple = ("shallow", "deep", "linnet", "kfo")  # any of simulations.model_zoo.MODEL_NAMES
    kfo_form: str = "linear"  # KFO's form: "linear", "psd" or "nonlinear"

    def __post_init__(self):
        require_int("dim", self.dim, 1)
        require_int("rank", self.rank, 1, self.dim)
        require_real("noise", self.noise, 0.0)
        if self.alpha is not None and not 0 < require_real("alpha", self.alpha) <= 1e3:
            raise ParameterError("alpha", self.alpha, "a finite real number in (0, 1000]")
        require_int("support", self.support, 1, 10**6)
        require_int("seed", self.seed, 0, 2**31 - 1)
        if self.task not in TASKS:
            raise ParameterError("task", self.task, "'regression' or 'classification'")
        object.__setattr__(self, "models", parse_models(",".join(self.models)))
        if self.kfo_form not in ("linear", "psd", "nonlinear"):
            raise ParameterError("kfo_form", self.kfo_form, "'linear', 'psd' or 'nonlinear'")
        require_int("steps", self.steps, 1)
        require_int("depth", self.depth, 1)
        require_int("width", self.width, 1)
        require_int("linnet_layers", self.linnet_layers, 0)
        require_int("iterations", self.iterations, 0)
        require_int("meta_batch", self.meta_batch, 1)
        require_real("meta_lr", self.meta_lr, 0.0, strict=True)
        require_int("eval_tasks", self.eval_tasks, 2)

    def family(self) -> LinearTaskFamily:
        return LinearTaskFamily.subspace(self.dim, self.support, self.query, rank=self.rank,
                                         noise_var=self.noise, seed=self.seed)


def explore_theory(config: ExploreConfig) -> dict:
    """Closed forms at θ* = μ: pre-adaptation loss, shallow loss at α, optimal α and best losses.

    For k > 1 steps the shallow values are exact (isotropic inputs, k ≤ 3) or None where only
    simulation answers; the preconditioned bound is for one optimally preconditioned step.
    """
    family = config.family()
    theta = sh.maml_optimal_init(family)
    alpha = resolve_alpha(config, family)
    if config.task == "classification":
        return {"alpha": alpha, **dict.fromkeys(THEORY_KEYS)}
    out = {"alpha": alpha, "pre_adaptation_loss": sh.pre_adaptation_loss(family, theta),
           "preconditioned_best_post_loss": pre.preconditioned_best_post_loss(family)}
    try:
        out["shallow_post_loss"] = sh.post_adaptation_loss(family, theta, alpha, config.steps)
        out["shallow_optimal_alpha"] = sh.optimal_step_size(family, config.steps)
        out["shallow_best_post_loss"] = sh.best_post_adaptation_loss(family, config.steps)
    except NoClosedForm:
        out.update(shallow_post_loss=None, shallow_optimal_alpha=None, shallow_best_post_loss=None)
    return out


THEORY_KEYS = ("pre_adaptation_loss", "preconditioned_best_post_loss", "shallow_post_loss",
               "shallow_optimal_alpha", "shallow_best_post_loss")


def resolve_alpha(config: ExploreConfig, family: LinearTaskFamily) -> float:
    """The inner step: the user's α, else the shallow optimum α* = a₁/a₂ (regression) or 0.5."""
    if config.alpha is not None:
        return config.alpha
    return sh.optimal_step_size(family, 1) if config.task == "regression" else CLASSIFICATION_ALPHA


def zoo_spec(config: ExploreConfig) -> ZooSpec:
    return ZooSpec(config.dim, config.depth, config.width, config.linnet_layers, config.kfo_form)


def explore_simulation(config: ExploreConfig, progress: bool = False) -> dict:
    """Meta-train each model with functional MAML; pre/post-adaptation losses on fresh tasks."""
    family = config.family()
    classify = config.task == "classification"
    inner = InnerLoop(resolve_alpha(config, family), config.steps, loss="logistic" if classify else "squared")
    draw = sample_classification_tasks if classify else sample_regression_tasks

    def sampler(n, gen):
        return draw(family, n, gen)

    results = {}
    for name in config.models:
        model, transform = build_model(name, zoo_spec(config), seed=config.seed)
        try:
            trained = meta_train(model, sampler, inner, config.iterations, config.meta_batch, config.meta_lr,
                                 seed=config.seed + 1, transform=transform,
                                 progress=f"{name:10s}" if progress else False)
            learned = (trained.transform_params, transform[1]) if transform else None
            est = evaluate(model, trained.params, sampler, inner, config.eval_tasks, seed=config.seed + 2,
                           transform=learned, with_accuracy=classify)
        except (DivergenceError, FloatingPointError) as err:
            raise DivergenceError(getattr(err, "iteration", config.iterations), float("nan"),
                                  f"{name} model's loss") from err
        results[name] = {key: value for metric, e in est.items()
                         for key, value in ((metric, e.mean), (f"{metric}_ci95", e.ci95))}
        results[name]["final_meta_loss"] = trained.history[-1] if trained.history else None
    return results


def explore(config: ExploreConfig, theory_only: bool = False, progress: bool = False) -> dict:
    """The whole report: {"config", "theory", "simulation"} (simulation absent if theory_only)."""
    out = {"config": asdict(config), "theory": explore_theory(config)}
    if not theory_only:
        out["simulation"] = explore_simulation(config, progress)
    return out
