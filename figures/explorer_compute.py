"""The explorer app's numbers (figures/explorer.py): ``explore --theory-only``'s closed forms under the app's controls.

Torch-free: this module, and the app's process, import numpy, scipy, sympy and theory/ only. The numbers are
explore's own (simulations.experiments.explore, the same functions ``paper_repro.py explore --theory-only
--json`` calls, on the ExploreConfig that ``command_line`` spells out), in two halves:

* ``panel_one``: the closed forms (pre-adaptation loss, shallow k-step loss at α, α*_k and its best loss, the
  optimal preconditioner) and the shallow loss curves against α for 1 and k steps; milliseconds at the defaults,
  so they follow every move of a control;
* ``Searches``: ANIL's and depth-2 MAML's best at width h and the Bayes floor (``searched_theory``: numerical
  searches, Monte-Carlo), computed once per setting in a separate process (neither imports torch: the
  depth-2 search differentiates with autograd) and cached; the app shows them as pending until they arrive.

Bad input (a rank above d) is the command line's own one-line error (``error_line``).
"""
from __future__ import annotations

import argparse
import atexit
import importlib
import math
import os
import pickle
import shlex
import subprocess
import sys
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from simulations.experiments import phase_diagram
from simulations.experiments.explore import ExploreConfig, closed_forms, joined_theory
from theory import shallow_maml
from theory.ground.errors import NoClosedForm, ParameterError, UsageError
from theory.ground.options import Output, add_options, config_from_args, flags

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ExploreConfig(theory_only=True)  # explore's defaults: the app starts at the command line's setting
TASK_STRUCTURES = ("subspace", "power law", "spectrum")  # Σw = V·UUᵀ on a random rank-r subspace; Σw = diag(V·i^−p);
# Σw = diag(a) from d comma-separated eigenvalues, as --task-spectrum reads them
INPUT_STRUCTURES = ("isotropic", "power law")  # Σx = I; Σx = diag(c·i^−p) with tr Σx = d
CURVE_POINTS = 81  # step sizes on each loss curve
PHASE_GRID = (48, 36)  # (d/K, r/d) points of the app's phase diagram (figure 6's quick profile is 60 × 50)
SEARCHED = ("anil_best_post_loss", "depth2_best_post_loss", "bayes_optimal_loss")  # the slow half's keys


@dataclass(frozen=True)
class Controls:
    """The app's controls, defaults equal to ``paper_repro.py explore``'s (ExploreConfig)."""

    dim: int = DEFAULT.dim  # d
    support: int | float = DEFAULT.support  # K, math.inf for the K → ∞ limit
    task_structure: str = "subspace"  # one of TASK_STRUCTURES
    rank: int = DEFAULT.effective_rank  # r (subspace)
    task_var: float = DEFAULT.effective_task_var  # V: the variance per task direction, or the power law's scale
    task_decay: float = 1.0  # p of the task spectrum a_i = V·i^−p (power law)
    task_spectrum: str = ""  # "a1,…,ad", the text of --task-spectrum (spectrum)
    input_structure: str = "isotropic"  # one of INPUT_STRUCTURES
    input_decay: float = 1.0  # p of the input spectrum b_i ∝ i^−p, tr Σx = d (power law)
    mean_norm: float = DEFAULT.mean_norm  # ‖μ‖
    noise_var: float = DEFAULT.noise_var  # s²
    alpha: float | None = DEFAULT.alpha  # α; None: the shallow optimum α* (explore's default)
    steps: int = DEFAULT.steps  # k
    width: int = DEFAULT.width  # h, of ANIL and depth-2 MAML


def power_law(dim: int, decay: float, total: float | None = None, scale: float = 1.0) -> tuple[float, ...]:
    """(scale·i^−p for i = 1 … d), rescaled to sum to ``total`` when given."""
    values = scale * np.arange(1, dim + 1, dtype=float) ** -float(decay)
    if total is not None:
        values = values * (total / values.sum())
    return tuple(float(v) for v in values)


def explore_options(controls: Controls) -> dict:
    """The ExploreConfig fields the controls set (those that differ from explore's defaults), theory_only on."""
    c = controls
    wanted = {"dim": c.dim, "support": c.support, "mean_norm": c.mean_norm, "noise_var": c.noise_var,
              "alpha": c.alpha, "steps": c.steps, "width": c.width}
    if c.task_structure == "subspace":
        wanted.update(rank=c.rank, task_var=c.task_var)
    elif c.task_structure == "power law":
        wanted["task_spectrum"] = power_law(c.dim, c.task_decay, scale=c.task_var)
    elif c.task_spectrum.strip():
        wanted["task_spectrum"] = c.task_spectrum  # the text, read as the command line reads it
    else:  # on the command line an empty list means "no spectrum" (the subspace): here, a spectrum still to give
        raise UsageError(f"argument --task-spectrum: empty: give exactly d = {c.dim} comma-separated eigenvalues >= 0")
    if c.input_structure == "power law":
        wanted["input_spectrum"] = power_law(c.dim, c.input_decay, total=float(c.dim))
    implied = {"rank": DEFAULT.effective_rank, "task_var": DEFAULT.effective_task_var}  # what None stands for
    out = {k: v for k, v in wanted.items() if v != getattr(DEFAULT, k) and v != implied.get(k, object())}
    return {**out, "theory_only": True}


def config_of(controls: Controls) -> ExploreConfig:
    """The ExploreConfig that ``command_line(controls)`` gives the command line: its arguments read by the same
    options (theory.ground.options, from ExploreConfig's fields) and checked by the same __post_init__. Bad input
    raises what the command line reports: UsageError (a value it cannot read) or ParameterError (out of range)."""
    parser = argparse.ArgumentParser(prog="paper_repro.py explore", exit_on_error=False)
    add_options(parser, ExploreConfig)
    add_options(parser, Output)
    try:
        args = parser.parse_args(command_line(controls)[1:])
    except argparse.ArgumentError as err:
        raise UsageError(str(err)) from None
    return config_from_args(ExploreConfig, args)


def option_text(value) -> str:
    """A value as an option's argument that reads back exactly."""
    if isinstance(value, str):
        return value
    if isinstance(value, tuple):
        return ",".join(map(option_text, value))
    if isinstance(value, float):
        return "inf" if math.isinf(value) else repr(value)  # repr: the shortest text that reads back exactly
    return str(value)


def command_line(controls: Controls) -> list[str]:
    """``paper_repro.py explore`` arguments whose ``--json`` prints the numbers the app shows."""
    flag = flags(ExploreConfig)
    argv = ["explore", "--theory-only"]
    for name, value in explore_options(controls).items():
        if isinstance(value, str | tuple):  # a list may start with a minus sign: --task-spectrum=-1,… is its value
            argv.append(f"{flag[name]}={option_text(value)}")
        elif name != "theory_only":
            argv += [flag[name], option_text(value)]
    return [*argv, "--json"]


def shell_command(controls: Controls) -> str:
    """The command line as one shell-quoted line: ``python paper_repro.py explore --theory-only … --json``."""
    return shlex.join(["python", "paper_repro.py", *command_line(controls)])


def error_line(err: ParameterError | UsageError, config: type = ExploreConfig) -> str:
    """The command line's message for ``err`` (a ParameterError as paper_repro.option_error words it, naming the
    option of ``config`` that set the parameter), as paper_repro.main prints it."""
    if isinstance(err, UsageError):
        return f"paper_repro.py: error: {err}"
    flag = flags(config).get(err.parameter, err.parameter)
    return f"paper_repro.py: error: argument {flag}: {err.value!r} is out of range: {err.valid}"


def step_counts(steps: int) -> tuple[int, ...]:
    """The inner-step counts drawn as curves: 1 and k."""
    return (1,) if steps == 1 else (1, steps)


@lru_cache(maxsize=64)
def panel_one(config: ExploreConfig) -> dict:
    """Panel 1's fast numbers: {"theory": closed_forms(config), "curves": [{"steps", "alpha", "loss",
    "optimal_alpha", "best_loss"} or {"steps", "note"} per step count], "alpha_max"}."""
    theory = closed_forms(config)  # explore --theory-only's own numbers (the structured family's O(d) forms)
    family = config.family()  # the curves: the dense forms at the app's d (at most its slider's)
    theta = shallow_maml.maml_optimal_init(family)
    one_step = shallow_maml.optimal_step_size(family, 1)
    optimal = {config.steps: theory["shallow_optimal_alpha"]}
    alpha_max = max(2 * one_step, 1.1 * theory["alpha"], 1.25 * (optimal[config.steps] or 0.0))
    grid = np.linspace(alpha_max / CURVE_POINTS, alpha_max, CURVE_POINTS)
    curves = []
    for k in step_counts(config.steps):
        try:
            star = optimal[k] if k in optimal else shallow_maml.optimal_step_size(family, k)
            if star is None:
                raise NoClosedForm(theory["notes"]["shallow_optimal_alpha"])
            loss = [shallow_maml.post_adaptation_loss(family, theta, float(a), k) for a in grid]
            best = theory["shallow_best_post_loss"] if k == config.steps else \
                shallow_maml.post_adaptation_loss(family, theta, star, k)
            curves.append({"steps": k, "alpha": grid.tolist(), "loss": loss, "optimal_alpha": star,
                           "best_loss": best})
        except NoClosedForm as err:
            curves.append({"steps": k, "note": str(err)})
    return {"theory": theory, "curves": curves, "alpha_max": alpha_max}


@lru_cache(maxsize=16)
def phase_grid(support: int, noise_ratio: float) -> dict:
    """Figure 6's closed-form grid (simulations.experiments.phase_diagram) at K and s²/V, coarser: the loss
    ratios are homogeneous of degree 0 in (V, s²), so figure 6's σ_w² = 1 with s²/V is exact for any V."""
    n_ratio, n_rank = PHASE_GRID
    settings = phase_diagram.Settings(support=support, noise_var=noise_ratio, n_ratio=n_ratio, n_rank=n_rank)
    return phase_diagram.units(settings)["grid"]()


def phase_point(config: ExploreConfig) -> dict:
    """Where the setting sits on figure 6: d/K and r/d, and whether the diagram's assumptions hold for it."""
    exact = not config.input_spectrum and not config.task_spectrum and not math.isinf(config.support)
    return {"d_over_k": config.dim / config.support, "r_over_d": config.effective_rank / config.dim,
            "exact": exact}


def method(theory: dict, key: str) -> str:
    """How ``explore --json`` obtained ``theory[key]``: exact, numerical, quadrature or monte-carlo (its notes)."""
    if theory.get(key) is None:
        return "n/a"
    if key == "bayes_optimal_loss":
        return theory["bayes_optimal_loss_method"]
    note = theory["notes"].get(key, "")
    return "numerical" if "numerical" in note else "exact"


JOBS = {"searched": ("simulations.experiments.explore", "searched_theory"),  # what a Searches child can run
        "dynamics": ("figures.explorer_dynamics", "dynamics_panel")}


def search_child(job: str = "searched") -> None:
    """The child process of Searches: a pickled ExploreConfig on stdin, ("ok", JOBS[job](config)) or ("error", its
    text) pickled on stdout; the searches' imports (scipy's optimisers, autograd) and time live here."""
    config = pickle.load(sys.stdin.buffer)
    module, name = JOBS[job]
    try:
        answer = ("ok", getattr(importlib.import_module(module), name)(config))
    except Exception as err:  # any failure is shown in the app as the quantities' note
        answer = ("error", f"{type(err).__name__}: {err}")
    sys.stdout.buffer.write(pickle.dumps(answer))


class Searches:
    """searched_theory (or another of JOBS) per setting, one at a time in a child process (``search_child``), cached.

    ``get(config)`` returns the finished dict or None (pending: started now, or still running); asking for another
    setting stops the running search (its result would be stale). The child has one BLAS thread, as explore's
    default ``--threads 1``.
    """

    def __init__(self, job: str = "searched"):
        self.job = job
        self._done: dict[ExploreConfig, dict] = {}
        self._job = None  # (config, process)
        self._lock = threading.Lock()
        atexit.register(self.stop)

    def get(self, config: ExploreConfig) -> dict | None:
        with self._lock:
            self._collect()
            if config in self._done:
                return self._done[config]
            if self._job is not None and self._job[0] != config:
                self._stop()
            if self._job is None:
                self._start(config)
            return None

    def wait(self, config: ExploreConfig, timeout: float) -> dict | None:
        """Block until ``config``'s search is done (or ``timeout`` seconds): for the static snapshot."""
        result = self.get(config)
        if result is None and self._job is not None:
            try:
                self._job[1].wait(timeout)
            except subprocess.TimeoutExpired:
                return None
            result = self.get(config)
        return result

    def _start(self, config: ExploreConfig) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}  # one BLAS thread in the child
        code = f"import figures.explorer_compute as m; m.search_child({self.job!r})"
        process = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        process.stdin.write(pickle.dumps(config))
        process.stdin.close()
        self._job = (config, process)

    def _collect(self) -> None:
        if self._job is None or self._job[1].poll() is None:
            return
        config, process = self._job
        try:
            status, value = pickle.loads(process.stdout.read())
        except (EOFError, pickle.UnpicklingError):
            status, value = "error", f"the search process ended with status {process.returncode}"
        process.stdout.close()
        self._done[config] = value if status == "ok" else failed_search(value)
        self._job = None

    def _stop(self) -> None:
        if self._job is not None:
            process = self._job[1]
            process.kill()
            process.wait()
            process.stdout.close()
            self._job = None

    def stop(self) -> None:
        with self._lock:
            self._stop()


def failed_search(message: str) -> dict:
    """A searched_theory-shaped dict whose values are None with ``message`` as each one's note."""
    return {"anil_best_post_loss": None, "depth2_best_post_loss": None, "bayes_optimal_loss": None,
            "bayes_optimal_loss_ci95": None, "bayes_optimal_loss_method": None,
            "notes": dict.fromkeys(SEARCHED, message)}


def full_theory(config: ExploreConfig, searched: dict | None) -> dict:
    """explore_theory(config)'s dict from the two halves (searched keys None and "pending" while the search runs);
    the same keys in the same order as ``explore --json``'s "theory"."""
    fast = panel_one(config)["theory"]
    slow = searched or {**failed_search("pending: searching in the background"), "bayes_optimal_loss_ci95": None}
    return joined_theory(fast, slow)
