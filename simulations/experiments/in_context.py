"""In-context learning by linear self-attention for one setting: ``paper_repro.py in-context``.

The closed forms of theory.linear_attention — the trained layer's Γ* at context length N and its exact test loss at
each test context length M (with --layers L > 1, the stacked construction's best loss, L plain steps of one size) —
and, with --simulate, literal attention layers trained on prompts (every entry of W_KQ and W_PV, Adam) from
--seeds seeds, each tested on fresh prompts at every M: mean and Student-t 95% interval over the seeds.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from simulations.experiments.explore import RANK_TOL, read_covariance
from theory import linear_attention, shallow_maml
from theory.ground.errors import NoClosedForm, ParameterError, require_int, require_real, require_seed
from theory.ground.options import Threads, option
from theory.task_family import LinearTaskFamily

QUERIES = 10  # queries per context: each its own prompt with the same context pairs
INPUT_EIGENVALUES = (1e-12, 1e12)  # Λ's eigenvalues lie in (low, high], from --input-spectrum or --input-cov
DEFAULTS = {"seeds": 3, "iterations": 1500, "eval_tasks": 20_000}


@dataclass(frozen=True)
class InContextConfig(Threads):
    """In-context regression by one linear self-attention layer (or L stacked layers): prompts of `--context` N
    pairs (x, y = wᵀx + ε), x ~ N(0, Λ) with Λ = diag(`--input-spectrum`) or the matrix in `--input-cov` FILE,
    w ~ N(0, `--task-var`·I), noise s². Prints Γ*
    (the trained layer's preconditioner: one gradient step from 0) and the exact test loss at each
    `--test-context` M; `--layers L` adds the best loss of L stacked layers each taking a plain step of one size
    (exact through the k-step forms where they are: Λ = I, or L ≤ 3); `--simulate` trains literal layers on
    prompts and tests them at every M. `--json` prints `{"gamma_star": [[…]], "rows": [{"test_context",
    "test_loss", "stacked_loss" (L > 1), "simulated_loss", "ci95" (with --simulate)}], "config": {…}}`."""

    dim: int = option(5, "input dimension d")
    context: int = option(20, "context length N the layer is trained at (pairs per prompt)")
    input_spectrum: tuple[float, ...] = option((), "exactly d eigenvalues > 0 of Λ = diag(…), the input covariance "
                                                   "(default all ones); not with --input-cov")
    input_cov: str = option("", "a file holding Λ, the input covariance: a .npy array or whitespace-separated text, a "
                                "symmetric positive definite d × d matrix with eigenvalues in (1e-12, 1e12] (instead "
                                "of --input-spectrum)", metavar="FILE")
    task_var: float = option(1.0, "variance v of each task weight: w ~ N(0, v·I)")
    noise_var: float = option(0.0, "label-noise variance s²", flag="--noise")
    test_context: tuple[int, ...] = option((), "context lengths M to test at (default N/2, N, 2N)")
    layers: int = option(1, "stacked layers L (the construction with Γ_ℓ = (γ/L)I: L plain steps)")
    simulate: bool = option(False, "also train literal attention layers on prompts and test them (one layer)")
    seeds: int | None = option(None, f"trained layers behind each simulated point (default {DEFAULTS['seeds']})",
                               only_with="simulate")
    iterations: int | None = option(None, f"Adam steps per trained layer (default {DEFAULTS['iterations']})",
                                    only_with="simulate")
    eval_tasks: int | None = option(None, f"fresh prompts' contexts per test (default {DEFAULTS['eval_tasks']}, "
                                          f"{QUERIES} queries each)", only_with="simulate")
    seed: int = option(0, "seed of the trained layers and their prompts")

    def uses_torch(self) -> bool:
        """Only --simulate trains layers in torch; the closed forms are numpy."""
        return self.simulate

    def __post_init__(self):
        super().__post_init__()
        require_int("dim", self.dim, 1, 200)
        require_int("context", self.context, 1, 10**5)
        self._check_inputs()
        if not 0 < require_real("task_var", self.task_var) <= 1e12:
            raise ParameterError("task_var", self.task_var, "a real number in (0, 1e12]")
        if not 0 <= require_real("noise_var", self.noise_var) <= 1e12:
            raise ParameterError("noise_var", self.noise_var, "a real number in [0, 1e12]")
        for m in self.test_context:
            require_int("test_context", m, 1, 10**5)
        require_int("layers", self.layers, 1, 50)
        if self.simulate and self.layers > 1:
            raise ParameterError("layers", self.layers, "1 with --simulate (a trained multi-layer model is not "
                                                        "simulated here)")
        for name, low, high in (("seeds", 2, 100), ("iterations", 1, 10**6), ("eval_tasks", 2, 10**6)):
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), low, high)
        require_seed("seed", self.seed)

    def _check_inputs(self) -> None:
        """Λ from --input-spectrum or --input-cov (not both): d eigenvalues in (1e-12, 1e12]; the file's matrix is
        kept (symmetrised) for ``family``."""
        low, high = INPUT_EIGENVALUES
        valid = f"eigenvalues in ({low:.0e}, {high:.0e}]".replace("e+", "e")  # (1e-12, 1e12]
        if self.input_cov:
            if self.input_spectrum:
                raise ParameterError("input_spectrum", self.input_spectrum, "not given together with --input-cov "
                                                                            "(the file fixes Λ)")
            matrix = read_covariance("input_cov", self.input_cov, self.dim, definite=True)
            smallest, largest = np.linalg.eigvalsh(matrix)[[0, -1]]
            if not low < smallest <= largest <= high:
                raise ParameterError("input_cov", self.input_cov, f"a matrix with {valid} (the file's lie in "
                                                                  f"[{smallest:.3g}, {largest:.3g}])")
            object.__setattr__(self, "_input_matrix", matrix)
        elif self.input_spectrum:
            if len(self.input_spectrum) != self.dim:
                raise ParameterError("input_spectrum", f"{len(self.input_spectrum)} values",
                                     f"exactly d = {self.dim} comma-separated numbers")
            bad = [v for v in self.input_spectrum if not (math.isfinite(v) and low < v <= high)]
            if bad:
                raise ParameterError("input_spectrum", bad[0], valid)
            floor = RANK_TOL * max(1.0, *self.input_spectrum)  # below it theory.task_family counts an eigenvalue 0
            if min(self.input_spectrum) <= floor:
                raise ParameterError("input_spectrum", min(self.input_spectrum),
                                     f"eigenvalues > {RANK_TOL:g} × max(1, the largest) = {floor:g} (the theory's "
                                     "rank tolerance: a smaller one makes Λ singular)")

    @property
    def input_matrix(self) -> np.ndarray:
        """Λ (d, d): the --input-cov file's matrix, else diag(--input-spectrum), else I."""
        if self.input_cov:
            return self._input_matrix
        return np.diag(self.input_spectrum or (1.0,) * self.dim)

    def family(self, context: int | None = None) -> LinearTaskFamily:
        return LinearTaskFamily.from_covariances(self.dim, context or self.context, QUERIES,
                                                 task_cov=self.task_var * np.eye(self.dim),
                                                 input_cov=self.input_matrix, noise_var=self.noise_var)

    def value(self, name: str) -> int:
        given = getattr(self, name)
        return DEFAULTS[name] if given is None else given

    @property
    def test_contexts(self) -> tuple[int, ...]:
        return self.test_context or tuple(sorted({max(1, self.context // 2), self.context, 2 * self.context}))


def run(config: InContextConfig, progress: bool = False) -> dict:
    family = config.family()
    star = linear_attention.optimal_gamma(family)
    rows = [{"test_context": m, "test_loss": linear_attention.icl_loss(family, star, m)} for m in config.test_contexts]
    notes = {}
    if config.layers > 1:  # the construction's γ is meta-learned at N (the best L-step size there), tested at M
        try:
            step = shallow_maml.optimal_step_size(family, config.layers)
            for row in rows:
                row["stacked_loss"] = linear_attention.stacked_layers_loss(family, step * config.layers,
                                                                           config.layers, row["test_context"])
            notes["stacked_gamma"] = f"γ = {step * config.layers:.6g}: L times the best {config.layers}-step size at N"
        except NoClosedForm as err:
            for row in rows:
                row["stacked_loss"] = None
            notes["stacked_loss"] = f"only simulation answers ({err})"
    if config.simulate:
        _simulate(config, family, rows, progress)
    return {"gamma_star": star.tolist(), "rows": rows, "notes": notes, "config": asdict(config)}


def _simulate(config: InContextConfig, family: LinearTaskFamily, rows: list[dict], progress: bool) -> None:
    from tqdm.auto import tqdm

    from simulations.statistics import mean_ci95
    from simulations.twins.linear_attention import estimate_icl_loss, train_attention

    per_seed = {row["test_context"]: [] for row in rows}
    for s in tqdm(range(config.value("seeds")), desc="train", disable=None if progress else True, leave=False):
        w_kq, w_pv, _ = train_attention(family, config.value("iterations"), seed=config.seed + 100 * s)
        for m in per_seed:
            per_seed[m].append(estimate_icl_loss(family, w_kq, w_pv, m, config.value("eval_tasks"),
                                                 seed=config.seed + 100 * s + m).mean)
    for row in rows:
        row["simulated_loss"], row["ci95"] = mean_ci95(per_seed[row["test_context"]])
        row["inside"] = bool(abs(row["simulated_loss"] - row["test_loss"]) <= row["ci95"])


def format_report(report: dict) -> str:
    c = report["config"]
    spectrum = (f"Λ from {c['input_cov']}" if c.get("input_cov") else
                f"Λ = diag({', '.join(f'{v:g}' for v in c['input_spectrum'])})" if c["input_spectrum"] else "Λ = I")
    gamma = np.asarray(report["gamma_star"])  # (d, d); symmetric: Σw = v·I commutes with Λ, so Γ* does
    lines = [f"In-context regression, one linear self-attention layer: d={c['dim']}, trained at N={c['context']}, "
             f"{spectrum}, w ~ N(0, {c['task_var']:g}·I), s²={c['noise_var']:g}",
             "  Γ* (diagonal here: Λ is, and Σw = v·I): " + ", ".join(f"{v:.5g}" for v in np.diag(gamma))
             if np.allclose(gamma, np.diag(np.diag(gamma))) else
             "  Γ* (Λ's eigenvectors, Σw = v·I), eigenvalues: "
             + ", ".join(f"{v:.5g}" for v in np.linalg.eigvalsh(0.5 * (gamma + gamma.T))[::-1])]
    head = f"  {'test context M':>14}  {'test loss (exact)':>17}"
    if c["layers"] > 1:
        head += f"  {str(c['layers']) + ' stacked layers':>18}"
    if c["simulate"]:
        head += f"  {'trained layers ± 95%':>24}  inside"
    lines.append(head)
    for row in report["rows"]:
        line = f"  {row['test_context']:>14}  {row['test_loss']:>17.5f}"
        if c["layers"] > 1:
            line += f"  {'n/a' if row['stacked_loss'] is None else format(row['stacked_loss'], '.5f'):>18}"
        if c["simulate"]:
            line += f"  {row['simulated_loss']:>13.5f} ± {row['ci95']:.5f}  {'yes' if row['inside'] else 'NO'}"
        lines.append(line)
    for key, note in report["notes"].items():
        lines.append(f"  {key}: {note}")
    return "\n".join(lines)
