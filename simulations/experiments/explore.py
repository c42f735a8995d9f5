"""The failure mode for one setting: theory next to meta-trained models and their remedies.

``run`` is the application behind ``paper_repro.py explore``: it builds the task family (a random
rank-r subspace with variance V per direction, or Σw = diag(a) from --task-spectrum; Σx = diag(b)
from --input-spectrum, else I; ‖μ‖ from --mean-norm; K may be ∞ for the theory alone), evaluates
the closed forms at the MAML-optimal initialisation θ* = μ (regression), each null with its reason
under "notes" where no closed form exists,
and (unless theory_only) meta-trains each named model (simulations.model_zoo: shallow, deep,
LinNet, each optionally with KFO) with functional MAML and evaluates it on fresh tasks.
For classification (y = sign(w_τᵀx), logistic loss) no closed form exists: theory values are
None and the default step is 0.5. ``format_report`` is the text the command line prints.

The theory half imports no torch (the simulation half imports it when it runs; the depth-2 optimum search
differentiates with autograd) and reads the structured family (theory.structured_family: O(d r) numbers, every
closed form in O(d r²)) wherever no file gives a covariance, so it answers at any d; a quantity without an O(d) form
is computed on the dense family up to a d where that is quick (DENSE_MAX_DIM and its siblings) and is null with the
reason above it. The explorer app (figures/explorer.py) evaluates ``explore_theory`` in its two halves:
``closed_forms`` (milliseconds) and ``searched_theory`` (ANIL's and depth-2's optimum at width h, the Bayes floor,
iMAML's best λ: up to seconds).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from simulations.experiments.settings import CLASSIFICATION_ALPHA, PAPER
from simulations.model_names import MODEL_NAMES, parse_models
from theory import shallow_maml
from theory import structured_family as structured
from theory.anil_width import anil_best_post_loss, closed_form_attains
from theory.bayes_floor import bayes_optimal_loss, spectral_bayes_floor
from theory.depth2_maml import depth2_best_post_loss
from theory.ground.errors import (
    DivergenceError,
    NoClosedForm,
    ParameterError,
    UsageError,
    require_int,
    require_real,
    require_seed,
)
from theory.ground.memory import require_square_matrices_fit, require_vectors_fit
from theory.ground.options import Threads, flags, option, parse_support
from theory.meta_sgd import meta_sgd_best_post_loss
from theory.preconditioned_maml import preconditioned_best_post_loss
from theory.ridge_maml import ISOTROPIC_MAX_EIGENVALUES, best_scalar_ridge, isotropic_best_scalar_ridge
from theory.structured_family import StructuredFamily
from theory.task_family import LinearTaskFamily

if TYPE_CHECKING:
    from simulations.model_zoo import ZooSpec

TASKS = ("regression", "classification")
RANK_TOL = 1e-12  # theory.task_family's relative eigenvalue tolerance: smaller eigenvalues count as 0
INPUT_MAX = 1e50  # largest eigenvalue of Σx: the closed forms hold products of up to four Σx (1e200 < 1.8e308)


def _check_spectrum(name: str, values: tuple, dim: int, strict: bool) -> None:
    """Exactly d finite eigenvalues, each ≥ 0 (> 0 if strict)."""
    if len(values) != dim:
        raise ParameterError(name, f"{len(values)} values", f"exactly d = {dim} comma-separated numbers")
    bound = "> 0" if strict else ">= 0"
    bad = [v for v in values if not math.isfinite(v) or v < 0 or (strict and v == 0)]
    if bad:
        raise ParameterError(name, bad[0], f"finite eigenvalues {bound}")
    if strict and max(values) > INPUT_MAX:
        raise ParameterError(name, max(values), f"eigenvalues <= {INPUT_MAX:g} (the closed forms multiply up to four "
                                                "of them: larger ones overflow float64)")
    floor = RANK_TOL * max(1.0, *values)  # below it theory.task_family counts an eigenvalue as 0
    if strict and min(values) <= floor:
        raise ParameterError(name, min(values), f"eigenvalues > {RANK_TOL:g} × max(1, the largest) = {floor:g} (the "
                                                "theory's rank tolerance: a smaller one makes Σx singular)")


def read_covariance(name: str, path: str, dim: int, definite: bool) -> np.ndarray:
    """The symmetric d × d matrix in ``path`` (.npy, else whitespace-separated text), positive semi-definite (or
    definite); ParameterError naming ``name`` and the fault otherwise. Symmetrised exactly ((A + Aᵀ)/2)."""
    try:
        matrix = np.load(path, allow_pickle=False) if path.endswith(".npy") else np.loadtxt(path, ndmin=2)
    except OSError as err:
        raise ParameterError(name, path, f"a readable file ({err.strerror or err})") from None
    except ValueError as err:
        raise ParameterError(name, path, f"a file of numbers ({str(err).splitlines()[0][:80]})") from None
    matrix = np.asarray(matrix)
    if matrix.dtype.kind not in "biuf":
        raise ParameterError(name, path, f"a file of numbers (it holds {matrix.dtype})")
    matrix = matrix.astype(float)
    if matrix.shape != (dim, dim):
        raise ParameterError(name, path, f"a d × d matrix with d = {dim} (the file holds shape {matrix.shape})")
    if not np.all(np.isfinite(matrix)):
        raise ParameterError(name, path, "finite entries")
    scale = max(float(np.abs(matrix).max()), 1e-300)
    asymmetry = float(np.abs(matrix - matrix.T).max())
    if asymmetry > 1e-10 * scale:
        raise ParameterError(name, path, f"a symmetric matrix (largest |A − Aᵀ| = {asymmetry:.3g})")
    matrix = 0.5 * (matrix + matrix.T)
    smallest, largest = np.linalg.eigvalsh(matrix)[[0, -1]]
    if definite and smallest <= RANK_TOL * max(largest, 1e-300):
        raise ParameterError(name, path, f"a positive definite matrix (smallest eigenvalue {smallest:.3g})")
    if smallest < -RANK_TOL * max(largest, 1e-300):
        raise ParameterError(name, path, f"a positive semi-definite matrix (smallest eigenvalue {smallest:.3g})")
    if largest > INPUT_MAX:
        raise ParameterError(name, path, f"eigenvalues at most {INPUT_MAX:g} (largest {largest:.3g})")
    return matrix


@dataclass(frozen=True)
class ExploreConfig(Threads):
    """The failure mode for one setting: theory at θ* = μ next to meta-trained models (mean ± 95% CI on fresh tasks).
    `--models` takes any of `shallow, deep, linnet, kfo, deep-kfo, linnet-kfo, deep-linnet` (default
    `shallow,deep,linnet,kfo`; `kfo` is the shallow model with KFO, `deep-kfo` KFO on the deep model). `--alpha`
    defaults to the shallow optimum α* (regression) or 0.5 (classification, where no closed form exists and
    theory values are null). The family: a random rank-r subspace with variance `--task-var` V per direction (Σw
    = V·UUᵀ), or Σw = diag(a) from `--task-spectrum` (exactly d values ≥ 0; not with `--rank`/`--task-var`); Σx
    = diag(b) from `--input-spectrum` (d values > 0; default I); either may instead be read from a file
    (`--task-cov FILE`, `--input-cov FILE`: a .npy or text d × d matrix, symmetric, PSD / PD); ‖μ‖ =
    `--mean-norm` (random direction from the seed); `--support inf` (with `--theory-only`) is the K → ∞ limit;
    the simulation samples the same family. `--json` prints `{"config": {…}, "theory": {"alpha",
    "pre_adaptation_loss", "shallow_post_loss", "shallow_optimal_alpha", "shallow_best_post_loss",
    "preconditioned_best_post_loss", "meta_sgd_best_post_loss" (the best per-parameter step, Meta-SGD),
    "anil_best_post_loss", "depth2_best_post_loss", "implicit_best_post_loss" (iMAML's best scalar λ, with
    "implicit_best_post_loss_ci95" and "implicit_best_lambda"), "bayes_optimal_loss", "bayes_optimal_loss_ci95",
    "bayes_optimal_loss_method", "notes": {key: why it is null, or how the Bayes floor was obtained}},
    "simulation": {"<model>": {"pre_loss", "post_loss", "*_ci95", …, and "post_accuracy" for classification}}}`;
    a quantity without a closed form is null with its reason in `notes`. With `--theory-only` and no file the
    closed forms cost O(d) time and memory (any d: `--dim 1000000` takes about a second); a quantity with no O(d)
    form (depth-2's search, ANIL's with μ ≠ 0, k ≥ 2 steps on a non-isotropic Σx) is computed where that is quick
    and is null with the reason above it."""

    dim: int = option(PAPER.dim, "input dimension d: the shallow model's failure grows with d/K")
    support: int | float = option(PAPER.support, "support points K per task: few shots, so d ≫ K; 'inf' (with "
                                                 "--theory-only): the K → ∞ limit, where the inner step uses the "
                                                 "population gradient", parse=parse_support, metavar="K")
    query: int = option(PAPER.query, "query points Q per task for the meta-loss")
    rank: int | None = option(None, f"rank r of the task subspace (default {PAPER.rank}: {PAPER.rank} dimensions, "
                                    "which a preconditioner can find); not with --task-spectrum")
    task_var: float | None = option(None, "variance V per task direction, Σw = V·UUᵀ on the rank-r subspace "
                                          "(default 1); not with --task-spectrum")
    mean_norm: float = option(0.0, "‖μ‖, the task mean's norm (μ in a random direction from the seed)")
    task_spectrum: tuple[float, ...] = option((), "exactly d eigenvalues ≥ 0 of Σw, which is then diag(a) in the "
                                                  "standard basis (instead of --rank and --task-var)")
    input_spectrum: tuple[float, ...] = option((), "exactly d eigenvalues > 0 of Σx = diag(b) (default all ones: "
                                                   "Σx = I)")
    task_cov: str = option("", "a file holding Σw: a .npy array or whitespace-separated text, a symmetric positive "
                                "semi-definite d × d matrix (instead of --rank, --task-var and --task-spectrum)",
                           metavar="FILE")
    input_cov: str = option("", "a file holding Σx, read as --task-cov reads it: symmetric positive definite d × d "
                                "(instead of --input-spectrum)", metavar="FILE")
    noise_var: float = option(0.0, "label-noise variance s²: 0, so the whole gap is adaptation", flag="--noise")
    alpha: float | None = option(None, "inner step size α (default: the shallow model's optimal step α* for "
                                       f"regression, {CLASSIFICATION_ALPHA} for classification)")
    steps: int = option(1, "inner steps k: one, where every closed form is exact")
    depth: int = option(3, "depth L of the deep model", not_with="theory_only")
    width: int = option(64, "hidden width of the deep model")
    linnet_layers: int = option(2, "identity-initialised d×d layers LinNet adds before the output",
                                not_with="theory_only")
    iterations: int = option(2000, "meta-training iterations per model (deep reaches ~0.41 of 0.375 by 3000)",
                             not_with="theory_only")
    meta_batch: int = option(32, "tasks per meta-iteration", not_with="theory_only")
    meta_lr: float = option(0.01, "Adam's learning rate for the outer loop", not_with="theory_only")
    eval_tasks: int = option(2000, "fresh tasks behind the reported means and intervals", not_with="theory_only")
    seed: int = option(0, "seed of the tasks, the subspace and the initialisations")
    task: str = option("regression", "regression (squared loss, closed forms) or classification "
                                     "(y = sign(w_τᵀx), logistic loss, simulation only)", choices=TASKS)
    models: tuple[str, ...] = option(("shallow", "deep", "linnet", "kfo"), "models to meta-train",
                                     choices=MODEL_NAMES, not_with="theory_only")
    kfo_form: str = option("linear", "form of the Kronecker-factored meta-optimizer (KFO)",
                           choices=("linear", "psd", "nonlinear"), not_with="theory_only")
    theory_only: bool = option(False, "closed forms only, no training")

    def __post_init__(self):
        super().__post_init__()
        dim = require_int("dim", self.dim, 1)
        structured_theory = self.theory_only and not (self.task_cov or self.input_cov)
        if not structured_theory:  # the simulation (and a covariance file) holds dense d × d matrices
            require_square_matrices_fit("dim", dim)  # checked before any is made
        self._check_family()
        if structured_theory:  # theory.structured_family: O(d r) numbers
            rank = 0 if self.task_spectrum or self.effective_rank == dim else self.effective_rank  # U (d, r); r = d: I
            require_vectors_fit("dim", dim, structured.VECTORS + rank)
        require_real("noise_var", self.noise_var, 0.0)
        if self.alpha is not None and not 0 < require_real("alpha", self.alpha) <= 1e3:
            raise ParameterError("alpha", self.alpha, "a finite real number in (0, 1000]")
        if not (math.isinf(self.support) and self.theory_only):
            if math.isinf(self.support):
                raise ParameterError("support", "inf", "a finite integer >= 1 (inf only with --theory-only)")
            require_int("support", self.support, 1, 10**6)
        require_seed("seed", self.seed)
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

    def _check_family(self) -> None:
        d = require_int("dim", self.dim, 1)
        require_real("mean_norm", self.mean_norm, 0.0)
        if self.task_cov:
            for name in ("rank", "task_var", "task_spectrum"):
                if getattr(self, name):
                    raise ParameterError(name, getattr(self, name), "not given together with --task-cov (the file "
                                                                     "fixes Σw)")
            object.__setattr__(self, "_task_matrix", read_covariance("task_cov", self.task_cov, d, definite=False))
        if self.input_cov:
            if self.input_spectrum:
                raise ParameterError("input_spectrum", self.input_spectrum, "not given together with --input-cov")
            object.__setattr__(self, "_input_matrix", read_covariance("input_cov", self.input_cov, d, definite=True))
        if self.task_spectrum and not self.task_cov:
            for name in ("rank", "task_var"):
                if getattr(self, name) is not None:
                    raise ParameterError(name, getattr(self, name), "not given together with --task-spectrum "
                                                                     "(the spectrum fixes Σw)")
            _check_spectrum("task_spectrum", self.task_spectrum, d, strict=False)
        elif not self.task_cov:
            require_int("rank", self.effective_rank, 1, d)
            require_real("task_var", self.effective_task_var, 0.0, strict=True)
        if self.input_spectrum:
            _check_spectrum("input_spectrum", self.input_spectrum, d, strict=True)

    @property
    def effective_rank(self) -> int:
        """r: the given rank, 2 by default, or the number of nonzero eigenvalues of --task-spectrum."""
        if self.task_cov:
            vals = np.linalg.eigvalsh(self._task_matrix)
            return int(np.sum(vals > RANK_TOL * max(vals.max(), 1e-300)))
        if self.task_spectrum:
            return sum(a > 0 for a in self.task_spectrum)
        return PAPER.rank if self.rank is None else self.rank

    @property
    def effective_task_var(self) -> float:
        return 1.0 if self.task_var is None else self.task_var

    def uses_torch(self) -> bool:
        """--theory-only is numpy alone (the depth-2 search's gradient is autograd's, not torch's)."""
        return not self.theory_only

    def structured(self) -> StructuredFamily | None:
        """The setting's family in O(d r) numbers (theory.structured_family), or None where a file gives Σw or Σx;
        the same Σx, Σw and μ as ``family`` (the same seed's draws)."""
        if self.task_cov or self.input_cov:
            return None
        inputs = np.array(self.input_spectrum, float) if self.input_spectrum else None
        if not self.task_spectrum:
            return StructuredFamily.subspace(self.dim, self.support, self.query, self.effective_rank, self.noise_var,
                                             self.mean_norm, self.effective_task_var**0.5, inputs, self.seed)
        direction = np.random.default_rng(self.seed).standard_normal(self.dim)  # as family() draws μ's
        return StructuredFamily.diagonal(self.dim, self.support, self.query, np.array(self.task_spectrum, float),
                                         inputs, self.mean_norm * direction / np.linalg.norm(direction),
                                         self.noise_var)

    def family(self) -> LinearTaskFamily:
        """The LinearTaskFamily of this setting (one object for the closed forms and the samplers)."""
        input_cov = (self._input_matrix if self.input_cov else
                     np.diag(self.input_spectrum) if self.input_spectrum else None)
        if not self.task_spectrum and not self.task_cov:
            return LinearTaskFamily.subspace(self.dim, self.support, self.query, rank=self.effective_rank,
                                             noise_var=self.noise_var, mean_norm=self.mean_norm,
                                             task_scale=self.effective_task_var**0.5, input_cov=input_cov,
                                             seed=self.seed)
        direction = np.random.default_rng(self.seed).standard_normal(self.dim)  # as subspace() draws μ's
        return LinearTaskFamily.from_covariances(self.dim, self.support, self.query,
                                                 task_cov=self._task_matrix if self.task_cov else
                                                 np.diag(self.task_spectrum), input_cov=input_cov,
                                                 task_mean=self.mean_norm * direction / np.linalg.norm(direction),
                                                 noise_var=self.noise_var)


def explore_theory(config: ExploreConfig) -> dict:
    """Closed forms at θ* = μ: pre-adaptation loss, shallow loss at α after k steps, its optimal α and best
    loss, the best preconditioned step, ANIL's and depth-2's best at width h, the Bayes floor; each None where no
    closed form exists, with the reason in "notes" (``closed_forms``, then ``searched_theory``)."""
    alpha = resolve_alpha(config, None if config.task == "classification" else theory_family(config))
    if config.task == "classification":
        reason = "no closed form for the logistic loss (the regression theory explains the mechanism)"
        return {"alpha": alpha, **dict.fromkeys(THEORY_KEYS), "notes": dict.fromkeys(THEORY_KEYS, reason)}
    family = theory_family(config)
    fast, slow = closed_forms(config, family), searched_theory(config, family)
    return joined_theory(fast, slow)


def joined_theory(fast: dict, slow: dict) -> dict:
    """closed_forms' and searched_theory's dicts as one, in explore --json's order: the values, then "notes"."""
    values = {k: v for half in (fast, slow) for k, v in half.items() if k != "notes"}
    return {**values, "notes": {**fast["notes"], **slow["notes"]}}


def theory_family(config: ExploreConfig) -> StructuredFamily | LinearTaskFamily:
    """The family the closed forms read: the structured one (O(d r) numbers, theory.structured_family) wherever the
    setting has one (no --task-cov or --input-cov file), else the dense LinearTaskFamily."""
    return config.structured() or config.family()


DENSE_MAX_DIM = 200  # a quantity without an O(d) form (k ≥ 2 steps with Σx ≠ I, ANIL with μ ≠ 0, depth-2's optimum)
# is computed on the dense family up to this d (its searches multiply d × d matrices, O(d³) an evaluation); above
# it the quantity is null with this reason in notes, rather than an attempt that runs for hours
ANIL_SEARCH_MAX_DIM = 64  # ANIL's numerical search (μ outside the closed-form W's rows): 8 L-BFGS runs over h(d + 1)
# weights, O(d³) an evaluation (d = 50: 5 s, d = 100: 84 s, d = 200: 8 min at h = 64); above it null with the reason
IMPLICIT_DENSE_MAX_DIM = 100  # iMAML's best λ for a non-isotropic Σx: Monte-Carlo of d × d eigendecompositions
IMPLICIT_DRAWS = 5000  # support-input draws behind iMAML's best scalar λ on a dense family (about 1 s at d = 50)
IMPLICIT_ISOTROPIC_DRAWS = 20_000  # draws of Ŝ's min(K, d) eigenvalues for Σx = βI (O(K³) each, whatever d)


def _too_large(config: ExploreConfig, limit: int, what: str) -> str:
    return (f"not computed at d = {config.dim}: {what} has no O(d) form here, and on dense d × d matrices it is "
            f"attempted up to d = {limit} (use a smaller --dim)")


def closed_forms(config: ExploreConfig, family: StructuredFamily | LinearTaskFamily | None = None) -> dict:
    """The cheap half of explore_theory (regression): {"alpha", the pre-adaptation loss, the optimal
    preconditioner's best loss, Meta-SGD's, the shallow loss at α after k steps, α*_k and the best k-step loss,
    "notes"}: O(d r²) on a structured family, the stems' dense forms otherwise (or where no O(d) form exists)."""
    family = theory_family(config) if family is None else family
    alpha = resolve_alpha(config, family)
    if isinstance(family, StructuredFamily):
        quantities = {
            "pre_adaptation_loss": lambda: structured.pre_adaptation_loss(family),
            "preconditioned_best_post_loss": lambda: structured.preconditioned_best_post_loss(family),
            "meta_sgd_best_post_loss": lambda: structured.meta_sgd_best_post_loss(family),
            "shallow_post_loss": lambda: structured.post_adaptation_loss(family, alpha, config.steps),
            "shallow_optimal_alpha": lambda: structured.optimal_step_size(family, config.steps),
            "shallow_best_post_loss": lambda: structured.best_post_adaptation_loss(family, config.steps),
        }
    else:
        theta = shallow_maml.maml_optimal_init(family)
        quantities = {
            "pre_adaptation_loss": lambda: shallow_maml.pre_adaptation_loss(family, theta),
            "preconditioned_best_post_loss": lambda: preconditioned_best_post_loss(family),
            "meta_sgd_best_post_loss": lambda: meta_sgd_best_post_loss(family),
            "shallow_post_loss": lambda: shallow_maml.post_adaptation_loss(family, theta, alpha, config.steps),
            "shallow_optimal_alpha": lambda: shallow_maml.optimal_step_size(family, config.steps),
            "shallow_best_post_loss": lambda: shallow_maml.best_post_adaptation_loss(family, config.steps),
        }
    out, notes, dense = {"alpha": alpha}, {}, None
    for key, compute in quantities.items():
        try:
            out[key] = float(compute())
        except NoClosedForm as err:
            if not isinstance(family, StructuredFamily):
                out[key], notes[key] = None, str(err)
            elif config.dim > DENSE_MAX_DIM:
                out[key], notes[key] = None, f"{err}; " + _too_large(config, DENSE_MAX_DIM, "this quantity")
            else:  # the dense forms (theory.wishart_words) at a d whose matrices are cheap, computed once
                dense = closed_forms(config, config.family()) if dense is None else dense
                out[key] = dense[key]
                if key in dense["notes"]:
                    notes[key] = dense["notes"][key]
    return {**out, "notes": notes}


def searched_theory(config: ExploreConfig, family: StructuredFamily | LinearTaskFamily | None = None) -> dict:
    """The costly half of explore_theory (regression): ANIL's and depth-2 MAML's best at width h (numerical
    searches where no closed form exists), the Bayes floor (exact, by quadrature, or Monte-Carlo with its 95%
    interval) and iMAML's best scalar λ, with "notes" saying which."""
    family = theory_family(config) if family is None else family
    notes = {}
    out = _deep_theory(config, family, resolve_alpha(config, family), notes)
    if isinstance(family, StructuredFamily):
        floor = spectral_bayes_floor(family.whitened_spectrum, family.support, family.noise_var, seed=config.seed)
    else:
        floor = bayes_optimal_loss(family, seed=config.seed)
    out.update(bayes_optimal_loss=floor.value, bayes_optimal_loss_ci95=floor.ci95,
               bayes_optimal_loss_method=floor.method)
    notes["bayes_optimal_loss"] = floor.note
    out.update(_implicit_theory(config, family, notes))
    return {**out, "notes": notes}


def _implicit_theory(config: ExploreConfig, family: StructuredFamily | LinearTaskFamily, notes: dict) -> dict:
    """iMAML with its best scalar λ (theory.ridge_maml: numerical over a Monte-Carlo exact given the support inputs,
    over Ŝ's eigenvalues alone where Σx = βI), with its 95% interval; null at K = ∞, where λ → 0 gives ½s²."""
    keys = ("implicit_best_post_loss", "implicit_best_post_loss_ci95", "implicit_best_lambda")
    if family.infinite_support:
        notes["implicit_best_post_loss"] = "K = ∞: λ → 0 gives ½s², the population minimum (nothing to estimate)"
        return dict.fromkeys(keys)
    if isinstance(family, StructuredFamily):
        beta = family.input_scale
        if beta is not None and min(family.support, family.dim) <= ISOTROPIC_MAX_EIGENVALUES:
            best = isotropic_best_scalar_ridge(family.dim, family.support, family.trace(0), family.noise_var,
                                               beta, seed=config.seed, draws=IMPLICIT_ISOTROPIC_DRAWS)
            notes["implicit_best_post_loss"] = f"{best.method}: {best.note}"
            return dict(zip(keys, (best.value, best.ci95, best.lam)))
        if config.dim > IMPLICIT_DENSE_MAX_DIM:
            notes["implicit_best_post_loss"] = _too_large(config, IMPLICIT_DENSE_MAX_DIM, "iMAML's best λ for a "
                                                          "non-isotropic Σx (Monte-Carlo over d × d support moments)")
            return dict.fromkeys(keys)
        family = config.family()
    best = best_scalar_ridge(family, seed=config.seed, draws=IMPLICIT_DRAWS)
    notes["implicit_best_post_loss"] = f"{best.method}: {best.note}"
    return dict(zip(keys, (best.value, best.ci95, best.lam)))


DEPTH2_RANDOM_STARTS = 2  # seeded random L-BFGS starts for the depth-2 optimum, besides ANIL's optimum …
DEPTH2_MAX_PARAMETERS = 200  # … when h(d + 1) is at most this; above it ANIL's optimum is the only start (μ = 0,
# where w2 = 0 at ANIL's optimum is the known minimiser's form) or the search is skipped (μ ≠ 0), said in notes


def _deep_theory(config: ExploreConfig, family: StructuredFamily | LinearTaskFamily, alpha: float,
                 notes: dict) -> dict:
    """Depth 2 at --width h: ANIL's best (closed form when θ = μ is reachable, else numerical) and full MAML's
    best over (W1, w2) of the exact loss at --alpha (numerical, started from ANIL's optimum with w2 = v₀)."""
    if family.infinite_support:
        reason = "K = ∞: the depth-2 and ANIL optima are not evaluated in the population limit here"
        notes.update(anil_best_post_loss=reason, depth2_best_post_loss=reason)
        return {"anil_best_post_loss": None, "depth2_best_post_loss": None}
    structured_family = isinstance(family, StructuredFamily)
    if (structured_family and family.whitened_spectrum.size == 0) or (not structured_family
                                                                       and not np.any(family.task_cov)):
        # Σw = 0: every task is μ, so θ = μ with no step is optimal for every model
        best = structured.pre_adaptation_loss(family) if structured_family else \
            float(shallow_maml.pre_adaptation_loss(family, family.task_mean))
        notes.update(dict.fromkeys(("anil_best_post_loss", "depth2_best_post_loss"), "exact: Σw = 0, every task is "
                                   "μ, so no step lowers the loss: the best is the pre-adaptation loss ½s²"))
        return {"anil_best_post_loss": best, "depth2_best_post_loss": best}
    d, h = family.dim, config.width
    if structured_family and d > DENSE_MAX_DIM:
        notes["depth2_best_post_loss"] = _too_large(config, DENSE_MAX_DIM, f"depth-2 MAML's optimum (a numerical "
                                                    f"search over h(d + 1) = {h * (d + 1)} weights)")
        if np.any(family.task_mean != 0):
            notes["anil_best_post_loss"] = _too_large(config, DENSE_MAX_DIM, "ANIL's optimum with μ ≠ 0 (a numerical "
                                                      "search: θ = Wᵀv₀ and P = WᵀW are coupled)")
            return {"anil_best_post_loss": None, "depth2_best_post_loss": None}
        notes["anil_best_post_loss"] = (f"width {h}: closed form (μ = 0: θ = μ in the row space of W; αWᵀW keeps "
                                        "the top-h eigenvalues of Σx^½ΣwΣx^½)")
        return {"anil_best_post_loss": structured.rank_limited_best_post_loss(family, h),
                "depth2_best_post_loss": None}
    family = config.family() if structured_family else family  # d ≤ DENSE_MAX_DIM: the searches' dense family
    if d > ANIL_SEARCH_MAX_DIM and not closed_form_attains(family, h, alpha):
        reason = _too_large(config, ANIL_SEARCH_MAX_DIM, "ANIL's optimum with μ outside the rows of the closed-form W "
                                                         "(a numerical search: θ = Wᵀv₀ and P = WᵀW are coupled)")
        notes.update(anil_best_post_loss=reason, depth2_best_post_loss="not computed: its search starts from ANIL's "
                     f"optimum, which is not computed at d = {d} (see anil_best_post_loss)")
        return {"anil_best_post_loss": None, "depth2_best_post_loss": None}
    anil = anil_best_post_loss(family, config.width, alpha, seed=config.seed)
    notes["anil_best_post_loss"] = f"width {config.width}: {anil.method}" + (f"; {anil.note}" if anil.note else "")
    small = h * (d + 1) <= DEPTH2_MAX_PARAMETERS
    if not small and np.any(family.task_mean != 0):
        notes["depth2_best_post_loss"] = (f"not computed: a numerical search over h(d + 1) = {h * (d + 1)} weights "
                                          f"with μ ≠ 0 takes minutes (at most {DEPTH2_MAX_PARAMETERS} here: "
                                          "use a smaller --width or --dim)")
        return {"anil_best_post_loss": float(anil.value), "depth2_best_post_loss": None}
    value, _, _, method = depth2_best_post_loss(family, h, alpha, restarts=DEPTH2_RANDOM_STARTS if small else 0,
                                                seed=config.seed, starts=[(anil.w, anil.v0)], gradient="autograd")
    notes["depth2_best_post_loss"] = (f"width {h}, α = {alpha:.4g}: {method}, including ANIL's optimum "
                                      "(an upper bound on the minimum)")
    return {"anil_best_post_loss": float(anil.value), "depth2_best_post_loss": float(value)}


THEORY_KEYS = ("pre_adaptation_loss", "preconditioned_best_post_loss", "meta_sgd_best_post_loss", "shallow_post_loss",
               "shallow_optimal_alpha", "shallow_best_post_loss", "anil_best_post_loss", "depth2_best_post_loss",
               "bayes_optimal_loss", "implicit_best_post_loss")


def resolve_alpha(config: ExploreConfig, family: StructuredFamily | LinearTaskFamily) -> float:
    """The inner step: the user's α, else the shallow optimum α* = a₁/a₂ (regression) or 0.5."""
    if config.alpha is not None:
        return config.alpha
    if config.task != "regression":
        return CLASSIFICATION_ALPHA
    if isinstance(family, StructuredFamily):
        return structured.optimal_step_size(family, 1)
    return shallow_maml.optimal_step_size(family, 1)


def zoo_spec(config: ExploreConfig) -> ZooSpec:
    from simulations.model_zoo import ZooSpec

    return ZooSpec(config.dim, config.depth, config.width, config.linnet_layers, config.kfo_form)


def explore_simulation(config: ExploreConfig, progress: bool = False) -> dict:
    """Meta-train each model with functional MAML; pre/post-adaptation losses on fresh tasks."""
    from simulations.maml import InnerLoop  # torch: imported when a simulation runs, never for the theory
    from simulations.model_zoo import build_model
    from simulations.tasks import sample_classification_tasks, sample_regression_tasks
    from simulations.training import evaluate, meta_train

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

    def num(x, key=None):  # a null theory value shows its reason (notes), "only simulation answers" by default
        if x is None:
            return f"n/a ({t.get('notes', {}).get(key) or 'only simulation answers'})"
        return f"{x:.4f}"

    lines = [f"Setting: {c['task']}, d={c['dim']}, K={c['support']}, Q={c['query']}, {_task_text(c)}, "
             f"s²={c['noise_var']}, α={t['alpha']:.4g}, k={c['steps']}"]
    if c["task"] == "classification":
        lines.append("Theory: no closed form for the logistic loss (the regression theory explains the mechanism)")
    else:
        lines += _theory_lines(t, num, c['width'])
    if report["simulation"]:
        lines += _simulation_lines(report["simulation"], c)
    return "\n".join(lines)


def _task_text(c: dict) -> str:
    """The task and input structure of the setting, in the report's words."""
    if c.get("task_cov"):
        parts = [f"Σw from {c['task_cov']}"]
    elif c["task_spectrum"]:
        parts = [f"Σw = diag({_spectrum_text(c['task_spectrum'])})"]
    else:
        parts = [f"r={2 if c['rank'] is None else c['rank']}"]
        if c["task_var"] is not None:
            parts.append(f"V={c['task_var']:g}")
    if c["mean_norm"]:
        parts.append(f"‖μ‖={c['mean_norm']:g}")
    if c["input_spectrum"]:
        parts.append(f"Σx = diag({_spectrum_text(c['input_spectrum'])})")
    if c.get("input_cov"):
        parts.append(f"Σx from {c['input_cov']}")
    return ", ".join(parts)


def _spectrum_text(values) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:4])
    return shown + (f", … ({len(values)} values)" if len(values) > 4 else "")


def _theory_lines(t: dict, num, width: int) -> list[str]:
    rows = [("pre-adaptation loss", "pre_adaptation_loss"), ("shallow post-adaptation loss at α", "shallow_post_loss"),
            ("shallow optimal α*", "shallow_optimal_alpha"),
            ("shallow best post-adaptation loss", "shallow_best_post_loss"),
            ("optimal preconditioner, best loss", "preconditioned_best_post_loss"),
            ("Meta-SGD (best diagonal), best loss", "meta_sgd_best_post_loss"),
            (f"ANIL at width {width}, best loss", "anil_best_post_loss"),
            (f"depth-2 MAML at width {width}, best loss", "depth2_best_post_loss")]
    lines = ["Theory (at the MAML-optimal initialisation θ* = μ):"]
    lines += [f"  {label:37s}{num(t[key], key)}" for label, key in rows]
    lines += [f"  {'iMAML, best scalar λ':37s}{_implicit_text(t)}",
              f"  {'Bayes floor (posterior mean)':37s}{_bayes_text(t)}"]
    if t["shallow_post_loss"] is not None and t["shallow_post_loss"] > t["pre_adaptation_loss"]:
        lines.append("  note: at this α the shallow inner loop raises the expected loss above its pre-adaptation value")
    return lines


def _implicit_text(t: dict) -> str:
    """iMAML's best scalar-λ loss with its interval and λ (numerical, Monte-Carlo exact given X), or why null."""
    if t.get("implicit_best_post_loss") is None:
        return f"n/a ({t['notes'].get('implicit_best_post_loss', 'classification')})"
    over = "Ŝ's eigenvalues (Σx = βI)" if "eigenvalues" in t["notes"]["implicit_best_post_loss"] else "support inputs"
    return (f"{t['implicit_best_post_loss']:.4f} ± {t['implicit_best_post_loss_ci95']:.4f} at λ = "
            f"{t['implicit_best_lambda']:.4g} (numerical; Monte-Carlo over {over}, exact given them)")


def _bayes_text(t: dict) -> str:
    """The Bayes floor with how it was obtained: exact, by quadrature, or Monte-Carlo with its interval."""
    if t["bayes_optimal_loss_ci95"]:
        return (f"{t['bayes_optimal_loss']:.4f} ± {t['bayes_optimal_loss_ci95']:.4f} (95% interval, Monte-Carlo "
                f"over support sets)")
    return f"{t['bayes_optimal_loss']:.4f} ({t['bayes_optimal_loss_method']}: {t['notes']['bayes_optimal_loss']})"


def _simulation_lines(simulation: dict, c: dict) -> list[str]:
    metrics = ["pre_loss", "post_loss"] + (["post_accuracy"] if c["task"] == "classification" else [])
    heads = {"pre_loss": "pre-adaptation loss", "post_loss": "post-adaptation loss",
             "post_accuracy": "post-adaptation accuracy"}
    lines = [f"Simulation (meta-trained {c['iterations']} iterations; mean ± 95% CI on {c['eval_tasks']} fresh tasks):",
             f"  {'model':10s}" + "".join(f"  {heads[m]:>24s}" for m in metrics)]
    for name, r in simulation.items():
        lines.append(f"  {name:10s}" + "".join(f"  {r[m]:13.4f} ± {r[m + '_ci95']:.4f}" for m in metrics))
    return lines
