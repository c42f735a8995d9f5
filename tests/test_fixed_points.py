"""Fixed points of MAML, FO-MAML, Reptile and ERM on a task mixture (theory.fixed_points), against brute force:
scipy's argmin of shallow_maml's exact loss mixed over the groups, the weighted mean, Monte-Carlo Wishart traces,
the K → ∞ limit; the verify checks (REGISTRY["fixed_points"]); and the fixed-points command."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy.optimize import minimize

import paper_repro
from simulations.checks import MIN_SCALE, REGISTRY
from simulations.statistics import Estimate
from tests.helpers import assert_close, assert_within_ci
from theory.fixed_points import (
    ALGORITHMS,
    Mixture,
    TaskGroup,
    adapted_trace,
    fixed_points,
    group_family,
    mixture_post_adaptation_loss,
)
from theory.ground.errors import ParameterError
from theory.shallow_maml import post_adaptation_loss

ISSUE = (TaskGroup(0.5, 1.0, 1.0), TaskGroup(0.5, 0.1, -1.0))
THREE = (TaskGroup(0.2, 1.3, (1.0, -0.5), 0.3), TaskGroup(0.5, 0.4, (-1.0, 0.2), 0.1),
         TaskGroup(0.3, 0.7, (0.3, 0.9), 0.0))  # d = 2, vector means


def _direct_loss(groups, theta, dim, alpha, steps, support, noise_var):
    """Σ_g p_g post_adaptation_loss on the Σx = a I families themselves (word-moment engine for k ≥ 2)."""
    return sum(g.prob * post_adaptation_loss(group_family(g, dim, support, noise_var=noise_var), theta, alpha, steps)
               for g in groups)


@pytest.mark.parametrize(("steps", "support"), [(1, 5), (2, 4), (3, math.inf), (2, math.inf)])
def test_maml_fixed_point_is_the_argmin_of_the_exact_mixed_loss(steps, support):
    theory = fixed_points(Mixture(THREE, 2, 0.6, steps, support, noise_var=0.2))["maml"]
    found = minimize(lambda t: _direct_loss(THREE, t, 2, 0.6, steps, support, 0.2), np.zeros(2), method="BFGS",
                     options={"gtol": 1e-11})
    assert_close(found.x, theory.theta, 1e-5, "scipy argmin")
    assert_close(theory.post_adaptation_loss, found.fun, 1e-10, "loss at θ*")


@pytest.mark.parametrize(("steps", "support"), [(1, 5), (2, 5), (3, 3), (1, math.inf), (3, math.inf)])
def test_rescaled_loss_equals_the_direct_loss(steps, support):
    theta = np.array([0.4, -1.1])
    assert_close(mixture_post_adaptation_loss(Mixture(THREE, 2, 0.7, steps, support, 0.3), theta),
                 _direct_loss(THREE, theta, 2, 0.7, steps, support, 0.3), 1e-10)


def test_erm_is_the_input_variance_weighted_mean_and_reptile_one_step_equals_it():
    points = fixed_points(Mixture(THREE, 2, 0.3, 1, 7))
    weights = np.array([g.prob * g.input_var for g in THREE])
    expected = weights @ np.stack([g.mean_vector(2) for g in THREE]) / weights.sum()
    assert_close(points["erm"].theta, expected, 1e-14)
    assert_close(points["reptile"].theta, expected, 1e-12)  # k = 1: θ − θ₁ = α Ŝ (θ − w)
    assert points["reptile"].rate == pytest.approx(0.3 * points["erm"].rate, rel=1e-12)


def test_no_steps_or_no_step_size_is_erm():
    for alpha, steps in ((0.0, 2), (0.5, 0)):
        points = fixed_points(Mixture(ISSUE, 1, alpha, steps, 5))
        for name in ("maml", "fomaml"):
            assert_close(points[name].theta, points["erm"].theta, 1e-14)
        assert points["reptile"].theta is None and points["reptile"].stable is None  # direction 0 everywhere


def test_adapted_trace_against_sampled_wishart_matrices():
    rng = np.random.default_rng(0)
    dim, support, beta, power = 3, 4, 0.4, 5
    x = rng.standard_normal((20_000, support, dim))
    s_hat = np.einsum("nki,nkj->nij", x, x) / support  # (n, d, d)
    vals = np.linalg.eigvalsh(s_hat)
    est = Estimate.from_samples(np.mean((1 - beta * vals) ** power, axis=1))
    assert_within_ci(adapted_trace(beta, power, dim, support), est, "q_5(0.4), d=3, K=4")


def test_infinite_support_is_the_limit():
    far = fixed_points(Mixture(THREE, 2, 0.6, 2, 10**6, noise_var=0.2))
    inf = fixed_points(Mixture(THREE, 2, 0.6, 2, math.inf, noise_var=0.2))
    for name in ALGORITHMS:
        assert_close(far[name].theta, inf[name].theta, 1e-4, name)
        assert_close(far[name].post_adaptation_loss, inf[name].post_adaptation_loss, 1e-4, name)


def test_fomaml_can_repel_and_leave_the_hull_of_the_means():
    points = fixed_points(Mixture((TaskGroup(0.5, 3.0, 1.0), TaskGroup(0.5, 0.1, -1.0)), 1, 0.5, 1, math.inf))
    assert points["fomaml"].stable is False and points["fomaml"].rate < 0
    assert points["fomaml"].theta[0] > 1  # beyond the easy group's mean
    assert all(points[n].stable for n in ("maml", "reptile", "erm"))


def test_maml_fixed_point_stays_between_the_means_and_reaches_the_hard_one():
    """MAML's λ_g ≥ 0: a convex combination; at α a_easy = 1 (K = ∞) the easy group's weight vanishes."""
    for steps in (1, 2, 3):
        theta = fixed_points(Mixture(ISSUE, 1, 0.5, steps, 5))["maml"].theta[0]
        assert -1 < theta < 1
    assert_close(fixed_points(Mixture(ISSUE, 1, 1.0, 2, math.inf))["maml"].theta, [-1.0], 1e-14)


@pytest.mark.parametrize(("kwargs", "name"), [
    ({"prob": -0.1}, "prob"), ({"prob": 1.5}, "prob"), ({"input_var": 0.0}, "input_var"),
    ({"task_var": -1.0}, "task_var"), ({"task_mean": float("nan")}, "task_mean")])
def test_bad_groups_name_the_field(kwargs, name):
    with pytest.raises(ParameterError) as err:
        TaskGroup(**{"prob": 1.0, "input_var": 1.0, "task_mean": 0.0, **kwargs})
    assert err.value.parameter == name


def test_probabilities_must_sum_to_one_and_means_match_d():
    with pytest.raises(ParameterError, match="summing to 1"):
        Mixture((TaskGroup(0.5, 1.0, 0.0),))
    with pytest.raises(ParameterError, match="groups"):
        Mixture(())
    with pytest.raises(ParameterError, match="task_mean"):
        fixed_points(Mixture((TaskGroup(1.0, 1.0, (1.0, 2.0)),), dim=3))


@pytest.mark.parametrize("check", REGISTRY["fixed_points"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("fixed_points.") and result.passed, result


# -- the command -------------------------------------------------------------------------------------
def test_command_json_holds_the_closed_forms(capsys):
    argv = ["fixed-points", "--group", "prob=0.25,input-var=2,task-mean=1,task-var=0.5", "--group",
            "prob=0.75,input-var=0.3,task-mean=-2", "--dim", "2", "--alpha", "0.4", "--steps", "2", "--support", "6",
            "--noise", "0.1", "--json"]
    assert paper_repro.main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    groups = (TaskGroup(0.25, 2.0, 1.0, 0.5), TaskGroup(0.75, 0.3, -2.0))
    points = fixed_points(Mixture(groups, 2, 0.4, 2, 6, noise_var=0.1))
    assert set(report["fixed_points"]) == set(ALGORITHMS)
    for name in ALGORITHMS:
        assert_close(report["fixed_points"][name], points[name].theta, 1e-15)
        assert report["post_adaptation_loss"][name] == points[name].post_adaptation_loss
        assert report["stable"][name] is points[name].stable
    assert report["config"]["support"] == 6 and len(report["config"]["groups"]) == 2
    assert "simulation" not in report


def test_command_defaults_are_the_issues_setting_and_print_a_table(capsys):
    assert paper_repro.main(["fixed-points"]) == 0
    out = capsys.readouterr().out
    theta = fixed_points(Mixture(ISSUE, 1, 0.5, 1, math.inf))["maml"].theta[0]
    assert "K=inf" in out and f"{theta:.6g}" in out and all(name in out for name in ALGORITHMS)


def test_command_simulate_reports_meta_trained_values(capsys):
    assert paper_repro.main(["fixed-points", "--support", "inf", "--simulate", "--runs", "2", "--iterations", "20",
                             "--json"]) == 0
    sim = json.loads(capsys.readouterr().out)["simulation"]
    assert set(sim) == set(ALGORITHMS)
    assert all(len(s["theta"]) == 1 and math.isfinite(s["ci95"][0]) and s["runs"] == 2 for s in sim.values())


@pytest.mark.parametrize(("argv", "text"), [
    (["--group", "prob=0.5,input-var=1,task-mean=1"], "summing to 1"),
    (["--group", "prob=1,input-var=0,task-mean=1"], "input-var=0.0 is out of range"),
    (["--group", "prob=1,input-var=-2,task-mean=1"], "input-var=-2.0 is out of range"),
    (["--group", "prob=1,input-var=1,task-mean=0,task-var=-1"], "task-var=-1.0 is out of range"),
    (["--group", "prob=1,input-var=1"], "misses task-mean"),
    (["--group", "prob=1,input-var=1,task-mean=0,colour=2"], "'colour=2' is not a field"),
    (["--group", "prob=1,input-var=x,task-mean=0"], "not a number"),
    (["--group", "prob=2,input-var=1,task-mean=0"], "prob=2.0 is out of range"),
    (["--group"], "expected one argument"),
])
def test_bad_groups_exit_2_with_one_line_naming_group(argv, text, capsys):
    assert paper_repro.main(["fixed-points", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("paper_repro.py: error: argument --group:") and text in err, err


@pytest.mark.parametrize(("argv", "flag"), [(["--support", "0"], "--support"), (["--support", "many"], "--support"),
                                            (["--steps", "-1"], "--steps"), (["--noise", "-1"], "--noise")])
def test_bad_settings_exit_2(argv, flag, capsys):
    assert paper_repro.main(["fixed-points", *argv]) == 2
    assert capsys.readouterr().err.startswith(f"paper_repro.py: error: argument {flag}:")


def test_config_refuses_no_groups():
    from simulations.experiments.fixed_points import FixedPointsConfig

    with pytest.raises(ParameterError) as err:
        FixedPointsConfig(groups=())
    assert err.value.parameter == "groups"
