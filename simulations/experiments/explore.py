"""The failure mode for one setting: theory next to meta-trained models and their remedies.

``run`` is the application behind ``paper_repro.py explore``: it builds the subspace task
family, evaluates the closed forms at the MAML-optimal initialisation θ* = μ (regression),
and (unless theory_only) meta-trains each named model (simulations.model_zoo: shallow, deep,
LinNet, each optionally with KFO) with functional MAML and evaluates it on fresh tasks.
For classification (y = sign(w_τᵀx), logistic loss) no closed form exists: theory values are
None and the default step is 0.5. ``format_report`` is the text the command line prints.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from simulations.maml import InnerLoop
from simulations.model_zoo import MODEL_NAMES, ZooSpec, build_model, parse_models
from simulations.options import Threads, flags, option
from simulations.tasks import sample_classification_tasks, sample_regression_tasks
from simulations.training import evaluate, meta_train
from theory import shallow_maml
from theory.errors import DivergenceError, NoClosedForm, ParameterError, UsageError, require_int, require_real
from theory.task_family import LinearTaskFamily

TASKS = ("regression", "classification")
CLASSIFICATION_ALPHA = 0.5  # no closed form picks α for the logistic loss; one LogR step still helps at 0.5


@dataclass(frozen=True)
class ExploreConfig(Threads):
    """One setting of the linear-regression failure mode; defaults show it in under a minute."""

    dim: int = option(50, "input dimension d: the shallow model's failure grows with d/K")
    support: int = option(5, "support points K per task: few shots, so d ≫ K")
    query: int = option(20, "query points Q per task for the meta-loss")
    rank: int = option(2, "rank r of the task subspace: 2 dimensions, which a preconditioner can find")
    noise_var: float = option(0.0, "label-noise variance s²: 0, so the whole gap is adaptation", flag="--noise")
    alpha: float | None = option(None, "inner step size α (default: the shallow model's optimal step α* for "
                                       f"regression, {CLASSIFICATION_ALPHA} for classification)")
    steps: int = option(1, "inner steps k: one, where every closed form is exact")
    depth: int = option(3, "depth L of the deep model")
    width: int = option(64, "hidden width of the deep model")
    linnet_layers: int = option(2, "identity-initialised d×d layers LinNet adds before the output")
    iterations: int = option(2000, "meta-training iterations per model (deep reaches ~0.41 of 0.375 by 3000)")
    meta_batch: int = option(32, "tasks per meta-iteration")
    meta_lr: float = option(0.01, "Adam's learning rate for the outer loop")
    eval_tasks: int = option(2000, "fresh tasks behind the reported means and intervals")
    seed: int = option(0, "seed of the tasks, the subspace and the initialisations")
    task: str = option("regression", "regression (squared loss, closed forms) or classification "
                                     "(y = sign(w_τᵀx), logistic loss, simulation only)", choices=TASKS)
    models: tuple[str, ...] = option(("shallow", "deep", "linnet", "kfo"), "models to meta-train",
                                     choices=MODEL_NAMES)
    kfo_form: str = option("linear", "form of the Kronecker-factored meta-optimizer (KFO)",
                           choices=("linear", "psd", "nonlinear"))
    theory_only: bool = option(False, "closed forms only, no training")

    def __post_init__(self):
        super().__post_init__()
        require_int("dim", self.dim, 1)
        require_int("rank", self.rank, 1, self.dim)
        require_real("noise_var", self.noise_var, 0.0)
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
                                         noise_var=self.noise_var, seed=self.seed)


def explore_theory(config: ExploreConfig) -> dict:
    """Closed forms at θ* = μ: pre-adaptation loss, shallow loss at α, optimal α and best losses.

    For k > 1 steps the shallow values are exact (isotropic inputs, k ≤ 3) or None where only
    simulation answers; the preconditioned bound is for one optimally preconditioned step.
    """
    family = config.family()
    theta = shallow_maml.maml_optimal_init(family)
    alpha = resolve_alpha(config, family)
    if config.task == "classification":
        return {"alpha": alpha, **dict.fromkeys(THEORY_KEYS)}
    levels = shallow_maml.reference_losses(family)  # the one-step levels every figure draws
    out = {"alpha": alpha, "pre_adaptation_loss": levels["pre_adaptation_loss"],
           "preconditioned_best_post_loss": levels["preconditioned_best_post_loss"]}
    try:  # the shallow model at the k steps asked for
        out["shallow_post_loss"] = shallow_maml.post_adaptation_loss(family, theta, alpha, config.steps)
        out["shallow_optimal_alpha"] = shallow_maml.optimal_step_size(family, config.steps)
        out["shallow_best_post_loss"] = shallow_maml.best_post_adaptation_loss(family, config.steps)
    except NoClosedForm:
        out.update(shallow_post_loss=None, shallow_optimal_alpha=None, shallow_best_post_loss=None)
    return out


THEORY_KEYS = ("pre_adaptation_loss", "preconditioned_best_post_loss", "shallow_post_loss",
               "shallow_optimal_alpha", "shallow_best_post_loss")


def resolve_alpha(config: ExploreConfig, family: LinearTaskFamily) -> float:
    """The inner step: the user's α, else the shallow optimum α* = a₁/a₂ (regression) or 0.5."""
    if config.alpha is not None:
        return config.alpha
    return shallow_maml.optimal_step_size(family, 1) if config.task == "regression" else CLASSIFICATION_ALPHA


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
            est = evaluate(model, trained.params, sampler, inner, config.eval_tasks, seed=config.seed + 2,
                           transform=trained.transform, with_accuracy=classify)
        except (DivergenceError, FloatingPointError) as err:
            raise DivergenceError(getattr(err, "iteration", config.iterations), float("nan"),
                                  f"{name} model's loss") from err
        results[name] = {key: value for metric, e in est.items()
                         for key, value in ((metric, e.mean), (f"{metric}_ci95", e.ci95))}
        results[name]["final_meta_loss"] = trained.history[-1] if trained.history else None
    return results


def run(config: ExploreConfig, progress: bool = False) -> dict:
    """The whole report: {"config", "theory", "simulation"} (simulation {} when config.theory_only).

    A diverging meta-training is a UsageError naming --alpha with advice for this task (module doc).
    """
    out = {"config": asdict(config), "theory": explore_theory(config), "simulation": {}}
    if not config.theory_only:
        try:
            out["simulation"] = explore_simulation(config, progress)
        except DivergenceError as err:
            raise UsageError(divergence_advice(config, err)) from None
    return out


def divergence_advice(config: ExploreConfig, err: DivergenceError) -> str:
    """One line: the step actually used, what diverged, and which steps to try instead.

    Regression: one shallow step lowers the expected loss for α in (0, 2α*) (the loss is quadratic
    in α with its minimum at α*). Classification has no such closed form, so only the direction is known.
    """
    flag = flags(ExploreConfig)
    alpha = resolve_alpha(config, config.family())
    head = f"argument {flag['alpha']}: {alpha:g} makes meta-training diverge ({err}); "
    if config.task == "classification":
        return head + (f"the logistic loss has no closed form bounding the step: try a smaller {flag['alpha']} "
                       f"or a smaller {flag['meta_lr']}")
    limit = 2 * shallow_maml.optimal_step_size(config.family(), 1)
    if alpha < limit:
        return head + (f"it lies in (0, {limit:.4g}), where one shallow step lowers the loss: "
                       f"use a smaller {flag['meta_lr']}, or fewer {flag['steps']}")
    return head + (f"use a step in (0, {limit:.4g}), where one shallow step lowers the loss, "
                   f"or a smaller {flag['meta_lr']}")


def format_report(report: dict) -> str:
    """The text report: the setting, the closed forms (regression), the meta-trained models."""
    t, c = report["theory"], report["config"]

    def num(x):
        return "n/a (only simulation answers)" if x is None else f"{x:.4f}"

    lines = [f"Setting: {c['task']}, d={c['dim']}, K={c['support']}, Q={c['query']}, r={c['rank']}, "
             f"s²={c['noise_var']}, α={t['alpha']:.4g}, k={c['steps']}"]
    if c["task"] == "classification":
        lines.append("Theory: no closed form for the logistic loss (the regression theory explains the mechanism)")
    else:
        lines += _theory_lines(t, num)
    if report["simulation"]:
        lines += _simulation_lines(report["simulation"], c)
    return "\n".join(lines)


def _theory_lines(t: dict, num) -> list[str]:
    lines = ["Theory (at the MAML-optimal initialisation θ* = μ):",
             f"  pre-adaptation loss                  {num(t['pre_adaptation_loss'])}",
             f"  shallow post-adaptation loss at α    {num(t['shallow_post_loss'])}",
             f"  shallow optimal α*                   {num(t['shallow_optimal_alpha'])}",
             f"  shallow best post-adaptation loss    {num(t['shallow_best_post_loss'])}",
             f"  optimal preconditioner, best loss    {num(t['preconditioned_best_post_loss'])}"]
    if t["shallow_post_loss"] is not None and t["shallow_post_loss"] > t["pre_adaptation_loss"]:
        lines.append("  note: at this α the shallow inner loop raises the expected loss above its pre-adaptation value")
    return lines


def _simulation_lines(simulation: dict, c: dict) -> list[str]:
    metrics = ["pre_loss", "post_loss"] + (["post_accuracy"] if c["task"] == "classification" else [])
    heads = {"pre_loss": "pre-adaptation loss", "post_loss": "post-adaptation loss",
             "post_accuracy": "post-adaptation accuracy"}
    lines = [f"Simulation (meta-trained {c['iterations']} iterations; mean ± 95% CI on {c['eval_tasks']} fresh tasks):",
             f"  {'model':10s}" + "".join(f"  {heads[m]:>24s}" for m in metrics)]
    for name, r in simulation.items():
        lines.append(f"  {name:10s}" + "".join(f"  {r[m]:13.4f} ± {r[m + '_ci95']:.4f}" for m in metrics))
    return lines
