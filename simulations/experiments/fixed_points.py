"""The fixed points of MAML, FO-MAML, Reptile and ERM on tasks of different hardness: ``paper_repro.py fixed-points``.

``run`` evaluates theory.fixed_points for the groups given by --group (Σx_g = a_g I, μ_g = m_g·1, Σw_g = v_g I)
and, under --simulate, meta-trains each algorithm with a stable fixed point on tasks sampled from the mixture
(simulations.twins.fixed_points.meta_trained_fixed_point: SGD, a constant step then a cosine decay, the mean
of the decaying half of the iterates per run, a Student-t 95% interval over --runs independent seeds).
``format_report`` prints the table.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from tqdm.auto import tqdm

from simulations.twins.fixed_points import meta_trained_fixed_point
from theory.fixed_points import ALGORITHMS, Mixture, TaskGroup, check_groups, fixed_points
from theory.ground.errors import ParameterError, require_int, require_real, require_seed
from theory.ground.options import Threads, option, parse_support

POWER_MAX = 300  # (1 − αA)^(2k) must stay below 10^300 (float64 ends near 1.8e308)
GROUP_FIELDS = {"prob": "prob", "input-var": "input_var", "task-mean": "task_mean", "task-var": "task_var"}
DEFAULT_GROUPS = (TaskGroup(0.5, 1.0, 1.0), TaskGroup(0.5, 0.1, -1.0))  # the easy and hard groups
GROUP_METAVAR = "prob=P,input-var=A,task-mean=M[,task-var=V]"


def parse_group(text: str) -> TaskGroup:
    """--group prob=P,input-var=A,task-mean=M[,task-var=V] -> TaskGroup (one-line errors)."""
    values = {}
    for part in (p.strip() for p in text.split(",") if p.strip()):
        key, sep, value = part.partition("=")
        if not sep or key.strip() not in GROUP_FIELDS:
            valid = ", ".join(GROUP_FIELDS)
            raise argparse.ArgumentTypeError(f"{part!r} is not a field (valid: {valid}, as key=value)")
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{key.strip()}={value!r} is not a number") from None
        if not math.isfinite(number):
            raise argparse.ArgumentTypeError(f"{key.strip()}={value!r} is not a finite number")
        if GROUP_FIELDS[key.strip()] in values:
            raise argparse.ArgumentTypeError(f"{key.strip()} given twice in one group {text!r} (give each field once)")
        values[GROUP_FIELDS[key.strip()]] = number
    missing = [k for k, v in GROUP_FIELDS.items() if v not in values and k != "task-var"]
    if missing:
        raise argparse.ArgumentTypeError(f"{text!r} misses {', '.join(missing)} (form: {GROUP_METAVAR})")
    try:
        return TaskGroup(**values)
    except ParameterError as err:
        flag = next(k for k, v in GROUP_FIELDS.items() if v == err.parameter)
        raise argparse.ArgumentTypeError(f"{flag}={err.value!r} is out of range: {err.valid}") from None



@dataclass(frozen=True)
class FixedPointsConfig(Threads):
    """The fixed points of MAML, FO-MAML, Reptile and ERM on task groups of different hardness, closed form,
    with MAML's post-adaptation loss there and whether each is attracting; `--simulate` also meta-trains each
    algorithm on sampled tasks (mean ± 95% interval over runs)."""

    groups: tuple[TaskGroup, ...] = option(DEFAULT_GROUPS, "one task group (Σx = A·I, μ = M·1, Σw = V·I, V default 0; "
                                                           "probabilities sum to 1); default: p=½, A=1, M=+1 and "
                                                           "p=½, A=0.1, M=−1 (an easy and a hard group)",
                                           flag="--group", parse=parse_group, metavar=GROUP_METAVAR, repeat=True)
    dim: int = option(1, "input dimension d: with isotropic groups θ* = c·1, so d = 1 shows everything")
    alpha: float = option(0.5, "inner step size α: α·A = 0.5 for the easy group, 0.05 for the hard one")
    steps: int = option(1, "inner steps k on the same support set")
    support: int | float = option(math.inf, "support points K per task, or 'inf' (the population gradient)",
                                  parse=parse_support, metavar="K|inf")
    noise_var: float = option(0.0, "label-noise variance s² (moves the losses, never the fixed points)", flag="--noise")
    simulate: bool = option(False, "also meta-train each algorithm on sampled tasks (a few seconds each)")
    runs: int = option(4, "independent meta-training runs per algorithm under --simulate (the interval is over them)",
                       only_with="simulate")
    iterations: int = option(200, "meta-iterations per run under --simulate (SGD, cosine decay to 0)",
                             only_with="simulate")
    seed: int = option(0, "seed of the first run under --simulate (runs use seed, seed + 1, …)", only_with="simulate")

    def __post_init__(self):
        super().__post_init__()
        check_groups(self.groups)
        require_int("dim", self.dim, 1, 10_000)
        require_real("alpha", self.alpha)
        require_int("steps", self.steps, 0, 50)
        if not (isinstance(self.support, float) and math.isinf(self.support)):
            require_int("support", self.support, 1)
        require_real("noise_var", self.noise_var, 0.0)
        largest = max(abs(self.alpha) * g.input_var for g in self.groups)  # |α|·A_g: (1 − αA_g)^(2k) must be finite
        bound = 10 ** (POWER_MAX / (2 * max(self.steps, 1))) - 1
        if largest > bound:
            raise ParameterError("alpha", self.alpha, f"|α|·A <= {bound:.3g} for every group's input variance A "
                                                      f"at k = {self.steps} ((1 − αA)^(2k) overflows float64 beyond)")
        require_int("runs", self.runs, 2, 1000)
        require_int("iterations", self.iterations, 4)
        require_seed("seed", self.seed)


def _config_dict(config: FixedPointsConfig) -> dict:
    groups = [{"prob": g.prob, "input_var": g.input_var, "task_mean": g.task_mean, "task_var": g.task_var}
              for g in config.groups]
    return {"groups": groups, "dim": config.dim, "alpha": config.alpha, "steps": config.steps,
            "support": "inf" if math.isinf(config.support) else config.support, "noise_var": config.noise_var,
            "simulate": config.simulate, "runs": config.runs, "iterations": config.iterations, "seed": config.seed}


def run(config: FixedPointsConfig, progress: bool = True) -> dict:
    """The four fixed points with their losses, rates and stability; meta-trained values under --simulate."""
    mixture = Mixture(config.groups, config.dim, config.alpha, config.steps, config.support, config.noise_var)
    points = fixed_points(mixture)
    report = {"fixed_points": {a: None if p.theta is None else p.theta.tolist() for a, p in points.items()},
              "post_adaptation_loss": {a: p.post_adaptation_loss for a, p in points.items()},
              "stable": {a: p.stable for a, p in points.items()},
              "rate": {a: p.rate for a, p in points.items()},
              "notes": {a: p.note for a, p in points.items()},
              "config": _config_dict(config)}
    if config.simulate:
        simulation = {}
        for name in tqdm(ALGORITHMS, desc="meta-train", disable=None if progress else True, leave=False):
            if not points[name].stable:
                simulation[name] = {"theta": None, "reason": "no attracting fixed point: meta-training cannot settle"}
                continue
            simulation[name] = meta_trained_fixed_point(mixture, name, runs=config.runs,
                                                        iterations=config.iterations, seed=config.seed).as_dict()
        report["simulation"] = simulation
    return report


def _vector(values) -> str:
    if values is None:
        return "none"
    if max(values) - min(values) <= 1e-12 * max(1.0, abs(values[0])):
        return f"{values[0]:.6g}" + ("·1" if len(values) > 1 else "")
    return "(" + ", ".join(f"{v:.4g}" for v in values[:4]) + (", …)" if len(values) > 4 else ")")


def format_report(report: dict) -> str:
    """The groups, then one row per algorithm: θ*, MAML post-adaptation loss, rate h, stability (and meta-trained)."""
    c = report["config"]
    lines = [f"fixed points: d={c['dim']}, α={c['alpha']:g}, k={c['steps']}, K={c['support']}, s²={c['noise_var']:g}",
             f"  {'group':>5}  {'prob':>6}  {'input var':>9}  {'task mean':>9}  {'task var':>8}"]
    lines += [f"  {i + 1:>5}  {g['prob']:6.3g}  {g['input_var']:9.4g}  {g['task_mean']!s:>9}  {g['task_var']:8.4g}"
              for i, g in enumerate(c["groups"])]
    sim = report.get("simulation")
    head = f"{'algorithm':9}  {'θ*':>12}  {'post-adapt loss':>15}  {'rate h':>9}  {'stable':6}"
    lines += ["", head + ("  meta-trained θ (95% over runs)" if sim else "")]
    for name in ALGORITHMS:
        loss, stable = report["post_adaptation_loss"][name], report["stable"][name]
        row = (f"{name:9}  {_vector(report['fixed_points'][name]):>12}  "
               f"{'none' if loss is None else f'{loss:.6g}':>15}  {report['rate'][name]:9.4g}  "
               f"{'n/a' if stable is None else ('yes' if stable else 'NO'):6}")
        if sim:
            s = sim[name]
            row += "  " + ("not run: " + s["reason"] if s["theta"] is None else
                           f"{_vector(s['theta'])} ± {max(s['ci95']):.2g}")
        lines.append(row)
    notes = [f"  {a}: {n}" for a, n in report["notes"].items() if n != "attracting"]
    if notes:
        lines += ["", "notes:", *notes]
    lines.append("θ* solves Σ_g p_g λ_g (θ − μ_g) = 0; the expected outer direction is h (θ − θ*), "
                 "attracting iff h > 0.")
    return "\n".join(lines)
