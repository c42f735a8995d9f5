"""MAML meta-trained on a finite set of tasks, swept over the training step α_t (Bernacchia, ICLR 2021).

``run`` is the application behind ``paper_repro.py finite-tasks``: for each α_t it draws ``runs`` training
sets of m tasks (the same sets for every α_t, so the rows are compared on common random numbers), finds the
meta-trained initialisation ω* (the minimiser of the empirical one-step MAML objective nearest ω₀,
theory.finite_tasks.meta_trained_init), evaluates its expected test loss exactly (one step α_r on n_r
points, theory.finite_tasks.expected_test_loss) and averages over the training sets (mean and 95% interval).
Beside the means it shows the approximation of theory/finite_tasks.py (derived here, labelled as such). The
best α_t is the grid point with the lowest mean; the best test step α_r* minimises the mean test loss of
that α_t's ω*'s exactly (theory.finite_tasks.best_test_step). The paper's claim: the best α_t is negative.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from simulations.statistics import Estimate
from simulations.tasks import offset_init, sample_training_sets
from theory import finite_tasks
from theory.ground.errors import ParameterError, require_int, require_real, require_seed
from theory.ground.memory import require_square_matrices_fit
from theory.ground.options import option

MAX_TRAIN_ALPHA = 1e100  # α_t² times the data's fourth moments must stay finite in float64 (1e308: overflow);
# from |α_t| ≈ 1e50 on, ω* is already its |α_t| → ∞ limit to the last bit
MAGNITUDES = {"noise_var": 1e100, "task_var": 1e100, "init_offset": 1e50, "test_alpha": 1e50}  # same reason
CHUNK_ENTRIES = 10_000_000  # input entries per chunk of training sets: bounds memory at about 80 MB per array


@dataclass(frozen=True)
class FiniteTasksConfig:
    """MAML meta-trained on m tasks (Bernacchia 2021): for each training step α_t (any sign) the exact
    meta-trained initialisation ω*, its exact expected test loss, averaged over `--runs` training sets (mean ±
    95% interval), beside a labelled approximation; the best α_t and the best test step (see "Beyond infinitely
    many identical tasks")."""

    dim: int = option(60, "input dimension d (the paper's p): d > m·n_v is the overparameterised regime")
    tasks: int = option(3, "training tasks m: few, so ω* depends on which tasks were drawn")
    train_support: int = option(30, "support points n_t per training task (the inner step's data)")
    train_query: int = option(2, "query points n_v per training task (the meta-objective's data)")
    test_support: int = option(20, "support points n_r per test task")
    noise_var: float = option(1.0, "label-noise variance s² (the paper's σ = 1): noise is what a negative α_t "
                                   "averages away", flag="--noise")
    task_var: float = option(0.25 / 60, "task variance V per direction, Σw = V·I (default 0.25/d: E‖w − w₀‖² = "
                                        "0.25, the paper's ν = 0.5)")
    init_offset: float = option(0.0, "‖ω₀ − w₀‖, the distance of the start ω₀ from the task mean w₀ = 0 "
                                     "(the paper's ω₀ = w₀ = 0); ω₀'s direction is drawn from --seed")
    train_alpha: tuple[float, ...] = option((-1.8, -1.5, -1.2, -0.9, -0.6, -0.3, 0.0, 0.3, 0.6),
                                            "training inner steps α_t to compare (any sign): the minimum lies "
                                            "near -1 in the default setting")
    test_alpha: float = option(0.2, "test inner step α_r > 0 (the paper's 0.2)")
    runs: int = option(1000, "training sets drawn per α_t (the paper's 1000): their mean and 95% interval")
    seed: int = option(0, "seed of ω₀'s direction and of the training sets")

    def __post_init__(self):
        require_square_matrices_fit("dim", require_int("dim", self.dim, 1))  # before any d × d matrix
        require_int("tasks", self.tasks, 1)
        require_int("train_support", self.train_support, 1)
        require_int("train_query", self.train_query, 1)
        require_int("test_support", self.test_support, 1)
        require_real("noise_var", self.noise_var, 0.0)
        require_real("task_var", self.task_var, 0.0)
        require_real("init_offset", self.init_offset, 0.0)
        if not self.train_alpha:
            raise ParameterError("train_alpha", "", "one or more comma-separated numbers")
        object.__setattr__(self, "train_alpha", tuple(require_real("train_alpha", a) for a in self.train_alpha))
        too_large = [a for a in self.train_alpha if abs(a) > MAX_TRAIN_ALPHA]
        if too_large:
            raise ParameterError("train_alpha", too_large[0], f"real numbers with |α_t| <= {MAX_TRAIN_ALPHA:g}")
        if len(set(self.train_alpha)) < len(self.train_alpha):
            raise ParameterError("train_alpha", ",".join(map(str, self.train_alpha)), "distinct numbers")
        require_real("test_alpha", self.test_alpha, 0.0, strict=True)
        for name, bound in MAGNITUDES.items():
            if getattr(self, name) > bound:
                raise ParameterError(name, getattr(self, name), f"a real number <= {bound:g} (the exact losses hold "
                                                                "its square times others: beyond, float64 overflows)")
        require_int("runs", self.runs, 2)
        require_seed("seed", self.seed)

    def task_sets(self) -> finite_tasks.TaskSets:
        """The training setting (theory.finite_tasks.TaskSets) of these options."""
        return finite_tasks.TaskSets(self.dim, self.tasks, self.train_support, self.train_query, self.noise_var,
                                     self.task_var)

    def family(self):
        """The test tasks (Σx = I, w ~ N(0, V·I), n_r support points): what the exact test loss is taken over."""
        return finite_tasks.evaluation_family(self.dim, self.test_support, self.noise_var, self.task_var)


def _chunk_sizes(config: FiniteTasksConfig) -> list[int]:
    """Runs per chunk of training sets, so that one chunk holds about CHUNK_ENTRIES input entries."""
    per_run = config.tasks * (config.train_support + config.train_query + 1) * config.dim
    size = max(1, CHUNK_ENTRIES // per_run)
    return [min(size, config.runs - start) for start in range(0, config.runs, size)]


def _solutions(config: FiniteTasksConfig, alphas, progress: bool = False):
    """(α_t, ω* of a chunk of training sets (runs, d)) for each chunk and each α_t in ``alphas``; the draws
    depend on the seed and the setting only, so every call sees the same training sets."""
    from tqdm.auto import tqdm

    rng = np.random.default_rng(config.seed)
    init = offset_init(config.dim, config.init_offset, rng)  # first draw: ω₀'s direction
    sizes = _chunk_sizes(config)
    with tqdm(total=len(sizes) * len(alphas), desc="α_t × training sets", disable=not progress, leave=False) as bar:
        for size in sizes:
            data = sample_training_sets(config.task_sets(), size, rng)
            for alpha in alphas:
                yield alpha, finite_tasks.meta_trained_init(**data, alpha=alpha, init=init)
                bar.update()


def sweep(config: FiniteTasksConfig, progress: bool = False) -> dict:
    """{"init_error": {α_t: (R,) values of ‖ω* − w₀‖²}, "test_loss": {α_t: (R,) exact test losses given ω*}}."""
    family = config.family()
    errors = {a: [] for a in config.train_alpha}
    losses = {a: [] for a in config.train_alpha}
    for alpha, omega in _solutions(config, config.train_alpha, progress):
        errors[alpha].append(np.sum(omega**2, axis=-1))  # w₀ = 0
        losses[alpha].append(finite_tasks.expected_test_loss(family, omega, config.test_alpha))
    return {"init_error": {a: np.concatenate(v) for a, v in errors.items()},
            "test_loss": {a: np.concatenate(v) for a, v in losses.items()}}


def run(config: FiniteTasksConfig, progress: bool = False) -> dict:
    """{"rows": [per α_t: init_error, test_loss (means, 95% half-widths), their approximations (None where not
    derived)], "best_train_alpha", "best_test_alpha", "best_test_loss", "gain_over_zero_step", "config"}."""
    values = sweep(config, progress)
    family = config.family()
    rows = []
    for alpha in config.train_alpha:
        error = Estimate.from_samples(values["init_error"][alpha])
        loss = Estimate.from_samples(values["test_loss"][alpha])
        approx = finite_tasks.approximate_init_error(config.task_sets(), config.init_offset, alpha)
        rows.append({"train_alpha": alpha, "init_error": error.mean, "init_error_ci95": error.ci95,
                     "test_loss": loss.mean, "test_loss_ci95": loss.ci95,
                     "init_error_approximation": approx,
                     "test_loss_approximation": finite_tasks.approximate_test_loss(family, config.test_alpha, approx)})
    best = min(rows, key=lambda r: r["test_loss"])["train_alpha"]
    omegas = np.concatenate([omega for _, omega in _solutions(config, (best,))])  # the same sets again
    best_alpha_r, best_loss = finite_tasks.best_test_step(family, omegas)
    gain = None
    if 0.0 in config.train_alpha:  # paired over the same training sets: the interval of the difference
        diff = Estimate.from_samples(values["test_loss"][0.0] - values["test_loss"][best])
        gain = {"mean": diff.mean, "ci95": diff.ci95}
    return {"rows": rows, "best_train_alpha": best, "best_test_alpha": best_alpha_r, "best_test_loss": best_loss,
            "gain_over_zero_step": gain, "config": asdict(config)}


def format_report(report: dict) -> str:
    """The table: α_t, ‖ω* − w₀‖² and the test loss (Monte-Carlo mean ± 95% interval, approximation)."""
    c = report["config"]

    def approx(value):
        return f"{value:10.4f}" if value is not None else f"{'n/a':>10}"

    lines = [f"Finite task sets (Bernacchia 2021): d={c['dim']}, m={c['tasks']}, n_t={c['train_support']}, "
             f"n_v={c['train_query']}, n_r={c['test_support']}, s²={c['noise_var']:g}, V={c['task_var']:.4g} per "
             f"direction (E‖w − w₀‖² = {c['task_var'] * c['dim']:.4g}), ‖ω₀ − w₀‖={c['init_offset']:g}, "
             f"α_r={c['test_alpha']:g}",
             f"Monte-Carlo over {c['runs']} training sets (the same sets for every α_t; mean ± 95% interval); "
             "test loss exact given ω*",
             f"  {'α_t':>6}  {'‖ω* − w₀‖²':>18}  {'approx.':>10}  {'test loss':>18}  {'approx.':>10}"]
    for r in report["rows"]:
        lines.append(f"  {r['train_alpha']:6.3g}  {r['init_error']:9.4f} ± {r['init_error_ci95']:.4f}  "
                     f"{approx(r['init_error_approximation'])}  {r['test_loss']:9.4f} ± {r['test_loss_ci95']:.4f}  "
                     f"{approx(r['test_loss_approximation'])}")
    best = next(r for r in report["rows"] if r["train_alpha"] == report["best_train_alpha"])
    lines.append(f"best α_t = {report['best_train_alpha']:g}: test loss {best['test_loss']:.4f} ± "
                 f"{best['test_loss_ci95']:.4f}")
    if report["gain_over_zero_step"] is not None:
        g = report["gain_over_zero_step"]
        lines.append(f"  lower than at α_t = 0 by {g['mean']:.4f} ± {g['ci95']:.4f} (paired over the training sets)")
    lines.append(f"best test step for those ω*: α_r* = {report['best_test_alpha']:.4f} "
                 f"(mean test loss {report['best_test_loss']:.4f})")
    lines.append("approx. = the approximation derived in theory/finite_tasks.py (rows of A treated as isotropic; "
                 "exact at α_t = 0; n/a where d ≤ m·n_v + 1)")
    return "\n".join(lines)
