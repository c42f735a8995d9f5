"""Figure 11's numbers: every adaptation rule on one axis, and in-context learning as one meta-learned step.

(a) On a rotated task covariance — Σw = R diag(λ) Rᵀ with a power-law spectrum λ_i ∝ 1/i (tr Σw = 1) and R a 45°
rotation of each coordinate pair, so its diagonal is unequal across pairs and even within none — at K = 5 and
s² = 0.25, against d/K: the best plain step and the best 5 plain steps (theory.shallow_maml), Meta-SGD's best
per-parameter step (theory.meta_sgd), the optimal preconditioner (theory.preconditioned_maml), iMAML with its best
scalar λ (theory.ridge_maml: numerical over a Monte-Carlo exact given the support inputs) and the Bayes floor, which
is iMAML with its best Λ (the posterior mean); points: Meta-SGD (the engine) and iMAML (scalar λ, the exact ridge
solve) meta-trained (mean ± 95% over seeds).
(b) One linear self-attention layer trained at context length N, tested at M (theory.linear_attention): the exact
loss of Γ*_N at every M, the loss of a layer trained at each M itself, and literal layers trained at N on prompts.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from simulations.statistics import mean_ci95
from theory import linear_attention, meta_sgd, preconditioned_maml, ridge_maml, shallow_maml
from theory.bayes_floor import bayes_optimal_loss
from theory.task_family import LinearTaskFamily


@dataclass(frozen=True)
class Settings:
    """Figure 11's settings: panel (a)'s family and grid, panel (b)'s prompts, and the meta-training runs."""

    support: int = 5  # K
    noise_var: float = 0.25  # s² > 0: the Bayes floor and iMAML's best λ are above 0
    dims: tuple[int, ...] = (5, 10, 20, 40)  # d/K = 1 … 8
    many_steps: int = 5  # the best k plain steps drawn beside one
    ridge_draws: int = 5_000  # support-input draws behind iMAML's best scalar λ (exact given them)
    floor_draws: int = 40_000  # support-set draws behind the Bayes floor's Monte-Carlo
    sim_dims: tuple[int, ...] = (5, 20)  # Meta-SGD meta-trained at these d
    sim_iterations: int = 400
    sim_seeds: int = 3
    eval_tasks: int = 4000
    icl_dim: int = 5  # (b) Λ = diag(1, …, d)/(3d), w ~ N(0, I), s² = 0
    icl_context: int = 20  # N, the length the layers are trained at
    icl_tests: tuple[int, ...] = (5, 10, 20, 40, 80)  # M
    icl_iterations: int = 1000
    icl_seeds: int = 3
    icl_eval: int = 10_000


def paired_rotation(dim: int) -> np.ndarray:
    """R rotating each coordinate pair (2j, 2j + 1) by 45° (a last odd coordinate stays)."""
    r, c = np.eye(dim), np.sqrt(0.5)
    for j in range(0, dim - 1, 2):
        r[j:j + 2, j:j + 2] = [[c, -c], [c, c]]
    return r


def rotated_family(config: Settings, dim: int) -> LinearTaskFamily:
    spectrum = 1.0 / np.arange(1, dim + 1)
    r = paired_rotation(dim)
    return LinearTaskFamily.from_covariances(dim, config.support, 20, task_cov=r @ np.diag(spectrum / spectrum.sum())
                                             @ r.T, noise_var=config.noise_var)


def _rules(config: Settings, dim: int, seed: int) -> dict:
    family = rotated_family(config, dim)
    scalar = ridge_maml.best_scalar_ridge(family, seed=seed, draws=config.ridge_draws)
    floor = bayes_optimal_loss(family, n_samples=config.floor_draws, seed=seed)
    return {"dim": dim, "d_over_k": dim / config.support,
            "plain": shallow_maml.best_post_adaptation_loss(family, 1),
            "many_steps": shallow_maml.best_post_adaptation_loss(family, config.many_steps),
            "meta_sgd": meta_sgd.meta_sgd_best_post_loss(family),
            "preconditioned": preconditioned_maml.preconditioned_best_post_loss(family),
            "imaml_scalar": scalar.value, "imaml_scalar_ci95": scalar.ci95, "imaml_lambda": scalar.lam,
            "bayes": floor.value, "bayes_ci95": floor.ci95, "bayes_method": floor.method}


def _meta_sgd_run(config: Settings, dim: int, seed: int) -> dict:
    from simulations.twins.meta_sgd import estimate_meta_trained_meta_sgd_loss

    family = rotated_family(config, dim)
    alpha = shallow_maml.optimal_step_size(family)
    est, _ = estimate_meta_trained_meta_sgd_loss(family, alpha, config.sim_iterations, config.eval_tasks, seed=seed)
    return {"post_loss": est.mean}


def _imaml_run(config: Settings, dim: int, seed: int) -> dict:
    from simulations.twins.ridge_maml import estimate_meta_trained_imaml_loss

    est, result = estimate_meta_trained_imaml_loss(rotated_family(config, dim), config.sim_iterations,
                                                   config.eval_tasks, seed=seed)
    return {"post_loss": est.mean, "lam": float(result.lam[0])}


def icl_family(config: Settings) -> LinearTaskFamily:
    d = config.icl_dim
    return LinearTaskFamily.from_covariances(d, config.icl_context, 10, task_cov=np.eye(d),
                                             input_cov=np.diag(np.arange(1, d + 1) / (3.0 * d)))


def _icl_theory(config: Settings) -> dict:
    family = icl_family(config)
    lengths = np.unique(np.rint(np.geomspace(2, 4 * max(config.icl_tests), 40)).astype(int))
    return {"lengths": lengths.tolist(),
            "trained_at_n": [linear_attention.optimal_icl_loss(family, int(m)) for m in lengths],
            "trained_at_m": [linear_attention.optimal_icl_loss(linear_attention.at_context(family, int(m)))
                             for m in lengths],
            "at_tests": [linear_attention.optimal_icl_loss(family, m) for m in config.icl_tests]}


def _icl_run(config: Settings, seed: int) -> dict:
    from simulations.twins.linear_attention import effective_gamma, estimate_icl_loss, train_attention

    family = icl_family(config)
    w_kq, w_pv, _ = train_attention(family, config.icl_iterations, seed=seed)
    star = linear_attention.optimal_gamma(family)
    gap = float(np.linalg.norm(effective_gamma(w_kq, w_pv) - star) / np.linalg.norm(star))
    return {"losses": [estimate_icl_loss(family, w_kq, w_pv, m, config.icl_eval, seed=seed + m).mean
                       for m in config.icl_tests], "gamma_gap": gap}


RUNS = {"meta_sgd": _meta_sgd_run, "imaml": _imaml_run}  # rule -> one meta-training run at (d, seed)


def _run_keys(config: Settings, seed: int):
    for rule in RUNS:
        for d in config.sim_dims:
            for s in range(config.sim_seeds):
                yield f"{rule}/{d}/{s}", rule, d, seed + 100 * s


def units(config: Settings, seed: int = 0) -> dict[str, Callable[[], dict]]:
    return ({f"rules/{d}": partial(_rules, config, d, seed) for d in config.dims}
            | {key: partial(RUNS[rule], config, d, s) for key, rule, d, s in _run_keys(config, seed)}
            | {"icl/theory": partial(_icl_theory, config)}
            | {f"icl/run/{s}": partial(_icl_run, config, seed + 100 * s) for s in range(config.icl_seeds)})


def assemble(config: Settings, seed: int, done: dict[str, dict]) -> dict:
    runs = {}
    for key, rule, d, _ in _run_keys(config, seed):
        runs.setdefault((rule, d), []).append(done[key]["post_loss"])
    points = {rule: [{"dim": d, "d_over_k": d / config.support, **dict(zip(("mean", "ci95"), mean_ci95(values)))}
                     for (r, d), values in runs.items() if r == rule] for rule in RUNS}
    icl_runs = [done[f"icl/run/{s}"] for s in range(config.icl_seeds)]
    trained = [dict(zip(("mean", "ci95"), mean_ci95([r["losses"][i] for r in icl_runs])))
               for i in range(len(config.icl_tests))]
    return {"rules": [done[f"rules/{d}"] for d in config.dims], "meta_sgd_trained": points["meta_sgd"],
            "imaml_trained": points["imaml"],
            "support": config.support, "noise_var": config.noise_var, "many_steps": config.many_steps,
            "sim_iterations": config.sim_iterations, "sim_seeds": config.sim_seeds,
            "icl": {**done["icl/theory"], "tests": list(config.icl_tests), "trained": trained,
                    "gamma_gaps": [r["gamma_gap"] for r in icl_runs], "dim": config.icl_dim,
                    "context": config.icl_context, "seeds": config.icl_seeds, "iterations": config.icl_iterations}}
