"""How meta-training gets there, for one setting: ``paper_repro.py dynamics``.

Shallow MAML and ANIL: the exact gradient-flow curve L(t), t = η·n (theory.dynamics), with the full-batch
discrete recursion at the meta learning rate η and, with --simulate, plain SGD from the same start (the twin:
mean ± 95% over seeds, each seed's loss on fresh tasks). Depth-2 MAML: gradient flow on the exact loss
integrated numerically from seeded random starts (PyTorch's default initialisation, the head scaled by
--init-scale), and the fraction of starts ending within BASIN_TOL of the best loss known (the optimum search
of theory.depth2_maml, started also from ANIL's optimum, or a lower flow end), with its interval.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from simulations.experiments.explore import ExploreConfig
from simulations.experiments.settings import PAPER
from theory import dynamics, shallow_maml
from theory.ground.errors import NoClosedForm, ParameterError, require_int, require_real
from theory.ground.options import Threads, option, parse_support
from theory.task_family import LinearTaskFamily

MODELS = ("shallow", "anil", "depth2")
BASIN_TOL = 1e-3  # a flow "reaches the optimum" when it ends within this of the best loss known
STOPPED_GRAD = 1e-4  # ... and has stopped when ‖∇L‖ is below this at the horizon
DEPTH2_WIDTHS = (1, 2, 4)
DEPTH2_DIM = 20
DEPTH2_SCALES = (0.1, 0.3, 1.0, 3.0)
DEFAULTS = {"init_scale": {"shallow": 1.0, "anil": 0.1}, "meta_lr": 0.1, "seeds": 4, "meta_batch": 1000,
            "eval_tasks": 2000, "starts": 8, "horizon": 300.0}
_FAMILY_FIELDS = ("dim", "support", "query", "rank", "task_var", "mean_norm", "task_spectrum", "input_spectrum",
                  "noise_var", "seed")


@dataclass(frozen=True)
class DynamicsConfig(Threads):
    """Meta-training dynamics for one setting: the exact gradient-flow curve L(t) at t = η·n. `--model shallow`
    (θ₀ = μ + C·u, u a seeded random direction; also joint training from θ₀ and the slowdown factor), `anil`
    (width h ≤ d, W(0) = C·Uᵀ along the task structure's eigenvectors, v₀ = 0, μ = 0: every mode a logistic
    curve, with its switch-on time) or `depth2` (numerical gradient flow from `--starts` seeded random starts per
    width and head scale: the basin fractions). The family options are `explore`'s. `--simulate` (shallow,
    anil) adds plain SGD at `--meta-lr` from the same start over `--seeds` runs. `--json` prints `{"times",
    "loss", "limit", "method", "note", "switch_on_times" (anil), "meta_lr", "stability_limit", "recursion" (the
    full-batch loss at n = t/η), "joint_training" and "slowdown" (shallow), "basins" (depth2: width,
    init_scale, starts, reached, fraction, ci95, stopped, optimum), "simulation": {"iterations", "loss", "ci95",
    "inside"} (with --simulate), "config"}`."""

    model: str = option("shallow", "which meta-training: shallow MAML, ANIL (head adapted, width h) or depth-2 "
                                   "full MAML", choices=MODELS)
    dim: int | None = option(None, f"input dimension d (default {PAPER.dim}; depth2: {DEPTH2_DIM}, figure 3's family, "
                                   "where the exact depth-2 loss of many nets at once is affordable)")
    support: int | float = option(PAPER.support, "support points K per task ('inf': the K → ∞ limit, theory "
                                                 "only)", parse=parse_support, metavar="K")
    query: int = option(PAPER.query, "query points Q per task (the simulation's meta-loss)")
    rank: int | None = option(None, f"rank r of the task subspace (default {PAPER.rank}); not with --task-spectrum")
    task_var: float | None = option(None, "variance V per task direction (default 1); not with --task-spectrum")
    mean_norm: float = option(0.0, "‖μ‖ (shallow and depth 2; ANIL's dynamics here need μ = 0)")
    task_spectrum: tuple[float, ...] = option((), "exactly d eigenvalues ≥ 0 of Σw = diag(a)")
    input_spectrum: tuple[float, ...] = option((), "exactly d eigenvalues > 0 of Σx = diag(b) (default I)")
    noise_var: float = option(0.0, "label-noise variance s²", flag="--noise")
    alpha: float | None = option(None, "inner step size α (default: the shallow model's optimal α*)")
    steps: int = option(1, "inner steps k (shallow only: ANIL and depth 2 take one step)")
    width: int | None = option(None, "hidden width h (anil: default d, at most d; depth2: default 1, 2 and 4)")
    init_scale: float | None = option(None, "the start's scale C: shallow ‖θ₀ − μ‖ (default 1), ANIL W(0) = C·Uᵀ "
                                            "(default 0.1), depth 2 the head's scale over PyTorch's default "
                                            f"initialisation (default {', '.join(map(str, DEPTH2_SCALES))})")
    meta_lr: float | None = option(None, f"meta learning rate η of the recursion and of SGD (default "
                                         f"{DEFAULTS['meta_lr']}); t = η·n")
    times: tuple[float, ...] = option((), "gradient-flow times t to report (default: spread over the curve; "
                                          f"depth 2: up to the horizon {DEFAULTS['horizon']:g})")
    simulate: bool = option(False, "also meta-train with plain SGD from the same start (shallow, anil)")
    seeds: int | None = option(None, f"SGD runs behind each simulated point (default {DEFAULTS['seeds']})",
                               only_with="simulate")
    meta_batch: int | None = option(None, f"tasks per SGD step (default {DEFAULTS['meta_batch']})",
                                    only_with="simulate")
    eval_tasks: int | None = option(None, f"fresh tasks per run and time (default {DEFAULTS['eval_tasks']})",
                                    only_with="simulate")
    starts: int | None = option(None, f"depth 2: random starts per width and head scale (default "
                                      f"{DEFAULTS['starts']})")
    seed: int = option(0, "seed of the subspace, the start's direction, SGD's tasks and depth 2's starts")

    def uses_torch(self) -> bool:
        """torch runs the depth-2 flows (autograd) and --simulate's SGD; the shallow and ANIL closed forms are numpy."""
        return self.simulate or self.model == "depth2"

    def __post_init__(self):
        super().__post_init__()
        if self.model not in MODELS:
            raise ParameterError("model", self.model, f"one of {', '.join(MODELS)}")
        self.explore_config()  # the family's checks, as explore's
        require_int("steps", self.steps, 1)
        for name in ("alpha", "init_scale", "meta_lr"):
            value = getattr(self, name)
            if value is not None and not 0 < require_real(name, value) <= 1e3:
                raise ParameterError(name, value, "a finite real number in (0, 1000]")
        for name, low in (("seeds", 2), ("meta_batch", 1), ("eval_tasks", 2), ("starts", 1)):
            if getattr(self, name) is not None:
                require_int(name, getattr(self, name), low, 10**6)
        for t in self.times:
            if not (math.isfinite(t) and 0 <= t <= 1e7):
                raise ParameterError("times", t, "times in [0, 1e7]")
        self._check_mode()

    def _check_mode(self) -> None:
        """Options that mean nothing for this model or without --simulate are refused, not ignored."""
        wrong = {"shallow": ("width", "starts"), "anil": ("starts",), "depth2": ("seeds", "meta_batch",
                                                                                  "eval_tasks", "meta_lr")}
        for name in wrong[self.model]:
            if getattr(self, name) is not None:
                raise ParameterError(name, getattr(self, name), f"not given with --model {self.model}")
        if self.model != "shallow" and self.steps != 1:
            raise ParameterError("steps", self.steps, f"1 with --model {self.model} (one inner step)")
        if self.model == "depth2" and self.simulate:
            raise ParameterError("simulate", True, "shallow or anil (depth 2's answer is its numerical flow)")
        if self.simulate and math.isinf(self.support):
            raise ParameterError("support", "inf", "a finite integer with --simulate")
        if self.model == "anil":
            if self.mean_norm != 0:
                raise ParameterError("mean_norm", self.mean_norm, "0 with --model anil (v₀ = 0 is optimal and "
                                                                  "stays 0 only when μ = 0)")
            if self.width is not None:
                require_int("width", self.width, 1, self.effective_dim)
        elif self.width is not None:
            require_int("width", self.width, 1, 64)

    @property
    def effective_dim(self) -> int:
        if self.dim is not None:
            return self.dim
        return DEPTH2_DIM if self.model == "depth2" else PAPER.dim

    def explore_config(self) -> ExploreConfig:
        values = {name: getattr(self, name) for name in _FAMILY_FIELDS} | {"dim": self.effective_dim}
        return ExploreConfig(**values, theory_only=True)

    def family(self) -> LinearTaskFamily:
        return self.explore_config().family()

    def value(self, name: str):
        """The option's value, or its default for this model."""
        given = getattr(self, name)
        if given is not None:
            return given
        default = DEFAULTS[name]
        return default[self.model] if isinstance(default, dict) else default


def run(config: DynamicsConfig, progress: bool = False) -> dict:
    family = config.family()
    alpha = config.alpha if config.alpha is not None else shallow_maml.optimal_step_size(family, 1)
    report = {"shallow": _shallow, "anil": _anil, "depth2": _depth2}[config.model](config, family, alpha, progress)
    return {**report, "alpha": alpha, "dim": family.dim, "config": asdict(config)}


def _shallow(config: DynamicsConfig, family: LinearTaskFamily, alpha: float, progress: bool) -> dict:
    direction = np.random.default_rng(config.seed + 1).standard_normal(family.dim)
    theta0 = family.task_mean + config.value("init_scale") * direction / np.linalg.norm(direction)
    try:
        hess = dynamics.shallow_hessian(family, alpha, config.steps)
    except NoClosedForm as err:
        raise ParameterError("steps", config.steps, f"a setting with an exact k-step loss ({err})") from None
    eta, curvature = config.value("meta_lr"), np.linalg.eigvalsh(hess)
    moving = curvature[curvature > 1e-12 * max(abs(curvature[-1]), 1.0)]  # directions the flow moves along
    spread = (0.02 / moving[-1], 3.0 / moving[0]) if moving.size else (eta, 10 * eta)  # H = 0: a flat objective
    times = np.asarray(config.times or _times(*spread, eta), float)
    curve = dynamics.shallow_flow(family, theta0, alpha, times, config.steps)
    joint = dynamics.shallow_flow(family, theta0, 0.0, times)
    out = _curve_json(curve) | {
        "meta_lr": eta, "stability_limit": dynamics.stability_limit(hess),
        "recursion": _recursion(times, eta, lambda n: dynamics.shallow_recursion(family, theta0, alpha, eta, n,
                                                                                   config.steps)),
        "joint_training": {"loss": joint.loss.tolist(), "limit": joint.limit},
        "slowdown": (dynamics.isotropic_slowdown(family.dim, family.support, alpha)
                     if family.isotropic_inputs and config.steps == 1 else None),
        "curvature_range": [float(curvature[0]), float(curvature[-1])]}
    if config.simulate:
        from simulations.maml import InnerLoop
        from simulations.twins.dynamics import shallow_start

        out["simulation"] = _simulate(config, family, shallow_start(family, theta0), InnerLoop(alpha, config.steps),
                                      curve, eta, progress)
    return out


def _anil(config: DynamicsConfig, family: LinearTaskFamily, alpha: float, progress: bool) -> dict:
    width = config.width or family.dim
    w0 = dynamics.anil_start(family, width, config.value("init_scale"))
    times, eta = config.times, config.value("meta_lr")
    if not times:
        modes = dynamics.anil_modes(family, alpha, w0)
        rates = 4 * alpha * (modes.a[modes.a > 0] if modes is not None else np.linalg.eigvalsh(family.task_cov)[-1:])
        slowest = max(modes.switch_on_times()) if modes is not None and modes.switch_on_times() else 0.0
        times = _times(0.1 / rates.max(), max(3 * slowest, 3.0 / rates.min()), eta)
    times = np.asarray(times, float)
    curve = dynamics.anil_flow(family, alpha, times, w0=w0)
    out = _curve_json(curve) | {
        "width": width, "meta_lr": eta,
        "recursion": _recursion(times, eta, lambda n: dynamics.anil_recursion(family, alpha, w0, eta, n))}
    if curve.method == dynamics.CLOSED_FORM:
        from theory.anil_width import rank_limited_best_post_loss

        out["rank_limited_optimum"] = rank_limited_best_post_loss(family, width)
    if config.simulate:
        from simulations.maml import InnerLoop
        from simulations.twins.dynamics import two_layer_start

        out["simulation"] = _simulate(config, family, two_layer_start(family, w0, np.zeros(width)),
                                      InnerLoop(alpha, adapt="head"), curve, eta, progress)
    return out


def _depth2(config: DynamicsConfig, family: LinearTaskFamily, alpha: float, progress: bool) -> dict:
    widths = (config.width,) if config.width else DEPTH2_WIDTHS
    scales = (config.init_scale,) if config.init_scale else DEPTH2_SCALES
    horizon = max(config.times) if config.times else DEFAULTS["horizon"]
    times = np.asarray(config.times or _times(0.1, horizon), float)
    cells, first = [], None
    for width in widths:
        found, curve = basin_cells(family, width, scales, config.value("starts"), alpha, times, config.seed)
        cells += found
        first = curve if first is None else first
    return {"times": times.tolist(), "loss": first.tolist(), "limit": cells[0]["optimum"],
            "method": dynamics.INTEGRATED + " (scipy RK45 on the exact depth-2 loss)",
            "note": (f"the curve: the first start at width {widths[0]}, head scale {scales[0]:g}; a start reaches "
                     f"the optimum when its flow ends within {BASIN_TOL:g} of the best loss known at its width"),
            "basins": cells}


def basin_cells(family: LinearTaskFamily, width: int, scales, starts: int, alpha: float, times,
                seed: int) -> tuple[list[dict], np.ndarray]:
    """At one width, for each head scale: how many of ``starts`` random starts the depth-2 flow takes to within
    BASIN_TOL of the best loss known (the optimum search from ANIL's optimum and seeded restarts, or a lower
    flow end), with a Wilson 95% interval; and the first start's loss curve at ``times``."""
    from scipy.stats import binomtest

    from simulations.twins.dynamics import depth2_starts
    from theory.anil_width import anil_best_post_loss
    from theory.depth2_maml import depth2_best_post_loss

    parts = [depth2_starts(family, width, scale, starts, seed) for scale in scales]
    flow = dynamics.depth2_flow(family, np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                                alpha, float(np.max(times)), times)
    anil = anil_best_post_loss(family, width, alpha, seed=seed)
    searched = depth2_best_post_loss(family, width, alpha, restarts=2, seed=seed, starts=[(anil.w, anil.v0)])[0]
    optimum = min(searched, float(flow.loss.min()))
    cells = []
    for i, scale in enumerate(scales):
        ends = flow.loss[i * starts:(i + 1) * starts]
        reached = int(np.sum(ends <= optimum + BASIN_TOL))
        low, high = binomtest(reached, starts).proportion_ci(0.95, method="wilson")
        values, counts = np.unique(np.round(ends, 4), return_counts=True)
        cells.append({"width": width, "init_scale": float(scale), "starts": starts, "reached": reached,
                      "fraction": reached / starts, "ci95": [float(low), float(high)],
                      "stopped": int(np.sum(flow.grad_norm[i * starts:(i + 1) * starts] <= STOPPED_GRAD)),
                      "optimum": optimum, "search_optimum": searched,
                      "end_values": [[float(v), int(k)] for v, k in zip(values, counts)]})
    return cells, flow.curve[:, 0]


def _times(first: float, last: float, eta: float | None = None, n: int = 16) -> list[float]:
    """0 and about n log-spaced times from ``first`` to ``last``: whole numbers of steps t = η·n where η is given
    (so the recursion and SGD are read at the same times), else rounded to 3 significant digits."""
    spread = np.geomspace(first, max(last, 10 * first), n)
    if eta is None:
        return [0.0] + [float(f"{t:.3g}") for t in spread]
    steps = np.unique(np.maximum(1, np.rint(spread / eta)).astype(int))
    return [0.0] + [float(eta * k) for k in steps]


def _recursion(times, eta: float, losses) -> dict:
    """The full-batch recursion's loss at n = round(t/η) for each time (the path SGD follows on average)."""
    n = np.rint(np.asarray(times) / eta).astype(int)
    return {"iterations": n.tolist(), "loss": [float(v) for v in losses(n)]}


def _curve_json(curve: dynamics.Curve) -> dict:
    return {"times": curve.times.tolist(), "loss": curve.loss.tolist(), "limit": curve.limit, "method": curve.method,
            "note": curve.note, "switch_on_times": [float(t) for t in curve.switch_on_times]}


def _simulate(config: DynamicsConfig, family: LinearTaskFamily, model, inner, curve: dynamics.Curve, eta: float,
              progress: bool) -> dict:
    """Plain SGD at η from the model's start: the loss at n = round(t/η), mean ± 95% over seeds, and whether
    the closed form at t = ηn lies inside that interval."""
    from simulations.statistics import mean_ci95
    from simulations.twins.dynamics import sgd_losses

    iterations = np.rint(curve.times / eta).astype(int)
    per_seed = sgd_losses(family, model, inner, eta, iterations, config.value("meta_batch"), config.value("seeds"),
                          config.value("eval_tasks"), seed=config.seed, progress="SGD" if progress else False)
    means, ci95 = zip(*(mean_ci95(row) for row in per_seed))  # Student-t over the seeds
    return {"iterations": iterations.tolist(), "loss": list(means), "ci95": list(ci95), "seeds": per_seed.shape[1],
            "inside": [bool(abs(m - x) <= c) for m, c, x in zip(means, ci95, curve.loss)]}


def format_report(report: dict) -> str:
    c = report["config"]
    head = (f"Meta-training dynamics: {c['model']}, d={report['dim']}, K={c['support']}, s²={c['noise_var']}, "
            f"α={report['alpha']:.4g}; t = η·n; {report['method']}")
    lines = [head]
    if report.get("note"):
        lines.append(f"  ({report['note']})")
    if c["model"] == "depth2":
        lines.append(f"Basins (gradient flow to t = {report['times'][-1]:g}; reached = ends within {BASIN_TOL:g} "
                     "of the best loss known):")
        lines.append(f"  {'width':>5}  {'head scale':>10}  {'reached':>9}  {'fraction (95%)':>20}  {'best known':>10}"
                     f"  ends at")
        for b in report["basins"]:
            ends = ", ".join(f"{v:.4f}×{k}" for v, k in b["end_values"])
            lines.append(f"  {b['width']:>5}  {b['init_scale']:>10g}  {b['reached']:>4}/{b['starts']:<4}  "
                         f"{b['fraction']:>8.2f} [{b['ci95'][0]:.2f}, {b['ci95'][1]:.2f}]  {b['optimum']:>10.4f}  "
                         f"{ends}")
        return "\n".join(lines)
    sim, joint = report.get("simulation"), report.get("joint_training")
    cols = f"  {'t':>9}  {'L(t) flow':>10}  {'n = t/η':>8}  {'full batch':>10}"
    if joint:
        cols += f"  {'joint training':>14}"
    if sim:
        cols += f"  {'SGD mean ± 95%':>20}  inside"
    lines.append(cols)
    for i, t in enumerate(report["times"]):
        row = (f"  {t:>9.4g}  {report['loss'][i]:>10.5f}  {report['recursion']['iterations'][i]:>8}  "
               f"{report['recursion']['loss'][i]:>10.5f}")
        if joint:
            row += f"  {joint['loss'][i]:>14.5f}"
        if sim:
            row += f"  {sim['loss'][i]:>11.5f} ± {sim['ci95'][i]:.5f}  {'yes' if sim['inside'][i] else 'NO'}"
        lines.append(row)
    lines.append(f"  limit L(∞) = {report['limit']:.6g}; meta learning rate η = {report['meta_lr']:g}"
                 + (f"; joint training (ERM, the pre-adaptation loss) → {joint['limit']:.6g}" if joint else ""))
    if report.get("switch_on_times"):
        lines.append("  switch-on times (each mode at half its limit): "
                     + ", ".join(f"{t:.4g}" for t in report["switch_on_times"]))
    if "rank_limited_optimum" in report:
        lines.append(f"  width-{report['width']} ANIL optimum (theory.anil_width): "
                     f"{report['rank_limited_optimum']:.6g}")
    if c["model"] == "shallow":
        lines.append(f"  stability: full-batch descent converges for η < {report['stability_limit']:.4g}")
        if report["slowdown"] is not None:
            lines.append(f"  slowdown against joint training (Σx = I): MAML's excess loss decays as e^(−2ht), joint "
                         f"training's as e^(−2t), h = (1 − α)² + α²(d + 1)/K = {report['slowdown']:.6g}")
    return "\n".join(lines)
