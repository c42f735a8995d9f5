"""verify checks of theory.finite_tasks: the nearest-ω₀ minimiser of the empirical MAML objective against
literal gradient descent (negative α_t, overparameterised; positive α_t, underparameterised) and against the
literal objective's Jacobian, the exact test loss at ω* against fresh test tasks, and E‖ω* − w₀‖² at α_t = 0
(where the module's formula is exact) against Monte-Carlo over training sets."""
from __future__ import annotations

import numpy as np

from simulations.checks.rules import Check, declare, identity_check, interval_check
from simulations.tasks import offset_init, sample_training_sets
from simulations.twins.finite_tasks import (
    estimate_init_error,
    estimate_test_loss,
    gradient_descent_init,
    nearest_minimisers,
    training_batch,
)
from theory import finite_tasks
from theory.task_family import LinearTaskFamily

PAPER = finite_tasks.TaskSets(dim=60, tasks=3, train_support=30, train_query=2, noise_var=1.0, task_var=0.25 / 60)


def _training_set(setting: finite_tasks.TaskSets, runs: int, seed: int, init_offset: float) -> tuple[dict, np.ndarray]:
    """``runs`` numpy training sets of ``setting`` and an ω₀ at distance init_offset from w₀ = 0."""
    rng = np.random.default_rng(seed)
    init = offset_init(setting.dim, init_offset, rng)
    return sample_training_sets(setting, runs, rng), init


def _gd_check(setting: finite_tasks.TaskSets, alpha: float, seed: int) -> Check:
    data, init = _training_set(setting, 1, seed, init_offset=0.5)
    one = {k: v[0] for k, v in data.items()}
    closed = finite_tasks.meta_trained_init(**one, alpha=alpha, init=init)
    reached = gradient_descent_init(**one, train_alpha=alpha, init=init)
    d, m, n_v = setting.dim, setting.tasks, setting.train_query
    regime = "d > m·n_v" if d > m * n_v else "d < m·n_v"
    return identity_check(f"d={d}, m={m}, n_t={setting.train_support}, n_v={n_v} ({regime}), α_t={alpha}, "
                                f"‖ω₀ − w₀‖=0.5: ω₀ + A⁺(b − Aω₀) vs gradient descent ({reached['steps']} steps)",
                          closed, reached["omega"])


def check_gd_limit_negative_step(scale: float) -> Check:
    return _gd_check(PAPER, -0.6, seed=1)


def check_gd_limit_underparameterised(scale: float) -> Check:
    return _gd_check(finite_tasks.TaskSets(dim=4, tasks=3, train_support=6, train_query=5, noise_var=0.5,
                                           task_var=0.3), 0.3, seed=2)


def check_jacobian_minimiser(scale: float) -> Check:
    data, init = _training_set(PAPER, 20, 3, init_offset=0.3)
    closed = finite_tasks.meta_trained_init(**data, alpha=-0.9, init=init)  # (20, d)
    literal = nearest_minimisers(training_batch(**data), -0.9, init).numpy()
    return identity_check("paper setting, 20 training sets, α_t=-0.9, "
                          "‖ω₀ − w₀‖=0.3: ω₀ + A⁺(b − Aω₀) vs ω₀ − J_r⁺ r(ω₀) (autograd Jacobian)", closed, literal)


def check_test_loss(scale: float) -> Check:
    data, init = _training_set(PAPER, 1, 4, init_offset=0.0)
    omega = finite_tasks.meta_trained_init(**{k: v[0] for k, v in data.items()}, alpha=-0.9, init=init)
    family = finite_tasks.evaluation_family(PAPER.dim, 20, PAPER.noise_var, PAPER.task_var)
    est = estimate_test_loss(family, omega, 0.2, int(30_000 * scale), seed=5)
    return interval_check("paper setting, ω* of one training set at α_t=-0.9; "
                          "test: n_r=20, α_r=0.2, 50 query points", finite_tasks.expected_test_loss(family, omega, 0.2),
                          est)


def check_init_error_at_zero_step(scale: float) -> Check:
    d, m, n_t, n_v, s2, v, offset = 40, 4, 10, 3, 0.7, 0.01, 0.5
    family = LinearTaskFamily(d, n_t, n_v, s2, task_factor=np.sqrt(v) * np.eye(d))
    init = offset_init(d, offset, np.random.default_rng(6))
    est = estimate_init_error(family, m, 0.0, init, int(2000 * scale), seed=7)
    approximation = finite_tasks.approximate_init_error(finite_tasks.TaskSets(d, m, n_t, n_v, s2, v), offset, 0.0)
    return interval_check(f"d={d}, m={m}, n_t={n_t}, n_v={n_v}, s²={s2}, V={v}, ‖ω₀ − w₀‖={offset}, α_t=0 "
                          "(the approximation is exact there)", approximation, est)


CHECKS = declare("finite_tasks", {
    "gd_limit_overparameterised": check_gd_limit_negative_step,
    "gd_limit_underparameterised": check_gd_limit_underparameterised,
    "nearest_minimiser": check_jacobian_minimiser,
    "test_loss": check_test_loss,
    "init_error_zero_step": check_init_error_at_zero_step,
})
