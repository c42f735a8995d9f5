"""MAML on a finite task set (theory.finite_tasks): the least-squares system against the literal objective,
the nearest-ω₀ minimiser, the exact test loss and its best step, the approximation where it is exact, the
verify checks (gradient descent, autograd Jacobian, Monte-Carlo twins), and the finite-tasks command."""
from __future__ import annotations

import json

import numpy as np
import pytest

import paper_repro
from simulations.checks import MIN_SCALE, REGISTRY
from simulations.experiments.finite_tasks import FiniteTasksConfig, run
from simulations.tasks import offset_init, sample_training_sets
from simulations.twins.finite_tasks import estimate_init_error
from tests.helpers import assert_close, assert_within_ci
from theory import finite_tasks, shallow_maml
from theory.task_family import LinearTaskFamily


def _data(dim=12, tasks=3, support=5, query=2, runs=1, seed=0, noise_var=0.3, task_var=0.2):
    rng = np.random.default_rng(seed)
    data = sample_training_sets(finite_tasks.TaskSets(dim, tasks, support, query, noise_var, task_var), runs, rng)
    return data if runs > 1 else {k: v[0] for k, v in data.items()}


def _literal_loss(omega, data, alpha):
    """(1/m) Σ_i (1/(2n_v)) ‖y_v − X_v ω'_i‖², ω'_i = ω − (α/n_t) X_tᵀ(X_t ω − y_t), one task at a time."""
    total = 0.0
    for xs, ys, xq, yq in zip(data["x_support"], data["y_support"], data["x_query"], data["y_query"]):
        adapted = omega - alpha / len(ys) * xs.T @ (xs @ omega - ys)
        total += 0.5 * np.mean((yq - xq @ adapted) ** 2)
    return total / len(data["y_support"])


@pytest.mark.parametrize("alpha", [-0.7, 0.0, 0.4])
def test_least_squares_system_is_the_literal_objective(alpha):
    data = _data()
    rng = np.random.default_rng(1)
    for _ in range(3):
        omega = rng.standard_normal(12)
        assert_close(finite_tasks.empirical_maml_loss(omega, **data, alpha=alpha), _literal_loss(omega, data, alpha))


def test_zero_step_is_least_squares_on_the_query_data():
    """α_t = 0: no inner step, so ω* (from ω₀ = 0) is the minimum-norm regression on the stacked query sets."""
    data = _data(dim=12, tasks=3, query=2)
    omega = finite_tasks.meta_trained_init(**data, alpha=0.0, init=np.zeros(12))
    x, y = data["x_query"].reshape(-1, 12), data["y_query"].reshape(-1)
    assert_close(omega, np.linalg.lstsq(x, y, rcond=None)[0])
    assert_close(x @ omega, y, 1e-9, "interpolates the 6 query points")


def test_overparameterised_solution_is_the_minimiser_nearest_the_start():
    data = _data(dim=12, tasks=3, query=2)
    rng = np.random.default_rng(2)
    init = rng.standard_normal(12)
    omega = finite_tasks.meta_trained_init(**data, alpha=-0.5, init=init)
    a, _ = finite_tasks.maml_least_squares(**data, alpha=-0.5)
    null = np.linalg.svd(a)[2][6:]  # (d − N, d): directions J does not see
    step = omega - init
    assert np.max(np.abs(null @ step)) <= 1e-12 * np.linalg.norm(step), "ω* − ω₀ lies in the row space of A"
    scale = finite_tasks.empirical_maml_loss(init, **data, alpha=-0.5)
    assert finite_tasks.empirical_maml_loss(omega, **data, alpha=-0.5) <= 1e-20 * scale  # d > N: it interpolates
    for _ in range(5):
        other = omega + null.T @ rng.standard_normal(6)
        assert finite_tasks.empirical_maml_loss(other, **data, alpha=-0.5) <= 1e-20 * scale  # also a minimiser
        assert np.linalg.norm(other - init) > np.linalg.norm(omega - init)


def test_underparameterised_solution_is_stationary_and_unique():
    data = _data(dim=4, tasks=3, query=5)
    a, b = finite_tasks.maml_least_squares(**data, alpha=0.3)
    omegas = [finite_tasks.meta_trained_init(**data, alpha=0.3, init=s * np.ones(4)) for s in (0.0, 5.0)]
    gradient = a.T @ (a @ omegas[0] - b)  # ∝ ∇J(ω*): the normal equations
    assert np.max(np.abs(gradient)) <= 1e-12 * np.linalg.norm(a) * np.linalg.norm(b)
    assert_close(omegas[1], omegas[0], 1e-9, "independent of ω₀")


def test_batched_solutions_match_one_at_a_time():
    data = _data(runs=4)
    batched = finite_tasks.meta_trained_init(**data, alpha=-0.9, init=np.zeros(12))
    for r in range(4):
        one = finite_tasks.meta_trained_init(**{k: v[r] for k, v in data.items()}, alpha=-0.9, init=np.zeros(12))
        assert_close(batched[r], one)


def test_expected_test_loss_is_the_one_step_closed_form():
    """Σx = I: L = ½ h_r (‖ω − w₀‖² + dV) + ½ s²(1 + α_r² d/n_r); the batched route equals the per-ω one."""
    d, n_r, s2, v, alpha = 10, 7, 0.4, 0.05, 0.3
    mean = np.linspace(-1, 1, d)
    family = finite_tasks.evaluation_family(d, n_r, s2, v, task_mean=mean)
    omegas = mean + np.random.default_rng(3).standard_normal((5, d))
    h_r = (1 - alpha) ** 2 + alpha**2 * (d + 1) / n_r
    formula = 0.5 * h_r * (np.sum((omegas - mean) ** 2, -1) + d * v) + 0.5 * s2 * (1 + alpha**2 * d / n_r)
    assert_close(finite_tasks.expected_test_loss(family, omegas, alpha), formula)
    assert_close([finite_tasks.expected_test_loss(family, w, alpha) for w in omegas], formula)


def test_best_test_step_minimises_the_mean_loss():
    family = finite_tasks.evaluation_family(10, 7, 0.4, 0.05)
    omegas = 0.3 * np.random.default_rng(4).standard_normal((6, 10))
    alpha, value = finite_tasks.best_test_step(family, omegas)

    def mean_loss(a):
        return np.mean([shallow_maml.post_adaptation_loss(family, w, a) for w in omegas])

    assert_close(mean_loss(alpha), value, 1e-12)
    assert alpha > 0 and mean_loss(alpha - 1e-3) > value and mean_loss(alpha + 1e-3) > value


def test_approximation_is_exact_at_zero_step_and_absent_when_underparameterised():
    """At α_t = 0 the formula is E‖ω* − w₀‖² exactly (Wishart moments): Monte-Carlo over training sets."""
    d, m, n_t, n_v, s2, v, offset = 20, 3, 5, 2, 0.5, 0.02, 0.4
    family = LinearTaskFamily(d, n_t, n_v, s2, task_factor=np.sqrt(v) * np.eye(d))
    init = offset_init(d, offset, np.random.default_rng(5))
    est = estimate_init_error(family, m, 0.0, init, 600, seed=6)
    sets = finite_tasks.TaskSets(d, m, n_t, n_v, s2, v)
    assert_within_ci(finite_tasks.approximate_init_error(sets, offset, 0.0), est, "E‖ω* − w₀‖²")
    assert finite_tasks.approximate_init_error(finite_tasks.TaskSets(7, 3, 5, 2, s2, v), offset, 0.0) is None


@pytest.mark.parametrize("check", REGISTRY["finite_tasks"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("finite_tasks.") and result.passed, result


def test_paper_setting_prefers_a_negative_training_step():
    """Bernacchia's claim at his setting (the command's defaults): the best α_t is negative, and its test loss
    lies below α_t = 0's by more than the paired 95% interval; the best test step is positive."""
    report = run(FiniteTasksConfig())
    assert report["best_train_alpha"] < 0
    gain = report["gain_over_zero_step"]
    assert gain["mean"] - gain["ci95"] > 0, gain
    assert report["best_test_alpha"] > 0


def test_command_json_keys_and_determinism(capsys):
    argv = ["finite-tasks", "--json", "--dim", "15", "--runs", "40", "--train-alpha", "-0.5,0,0.5"]
    outputs = []
    for _ in range(2):
        assert paper_repro.main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
    report = json.loads(outputs[0])
    assert set(report) >= {"rows", "best_train_alpha", "best_test_alpha", "config"}
    assert [r["train_alpha"] for r in report["rows"]] == [-0.5, 0.0, 0.5]
    for row in report["rows"]:
        assert {"train_alpha", "init_error", "init_error_ci95", "test_loss", "test_loss_ci95"} <= set(row)
        assert all(np.isfinite(row[k]) for k in ("init_error", "init_error_ci95", "test_loss", "test_loss_ci95"))
    assert paper_repro.main(["finite-tasks", "--dim", "15", "--runs", "40"]) == 0
    assert "best α_t" in capsys.readouterr().out


BAD_INPUT = [
    (["--test-alpha", "0"], "--test-alpha", "> 0"),
    (["--test-alpha", "-0.2"], "--test-alpha", "> 0"),
    (["--tasks", "0"], "--tasks", ">= 1"),
    (["--runs", "1"], "--runs", ">= 2"),
    (["--dim", "0"], "--dim", ">= 1"),
    (["--train-query", "0"], "--train-query", ">= 1"),
    (["--noise", "-1"], "--noise", ">= 0"),
    (["--task-var", "-0.1"], "--task-var", ">= 0"),
    (["--init-offset", "-1"], "--init-offset", ">= 0"),
    (["--train-alpha", ""], "--train-alpha", "one or more"),
    (["--train-alpha", "0.1,x"], "--train-alpha", "not a number"),
    (["--train-alpha", "0.1,0.1"], "--train-alpha", "distinct"),
]


@pytest.mark.parametrize(("argv", "flag", "valid"), BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(argv, flag, valid, capsys):
    assert paper_repro.main(["finite-tasks", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("paper_repro.py: error: ")
    assert flag in err and valid in err, err
