"""theory.dynamics, how meta-training gets there: the closed-form curves against numerical integration with
gradients taken independently (finite differences of the exact losses), their limits against the optima of
other stems, the discrete recursion's stability limit, the depth-2 flow's batching, the command line, and the
SGD twins (simulations/twins/dynamics.py) through the verify checks."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.integrate import solve_ivp

import paper_repro
from simulations.checks import MIN_SCALE, REGISTRY
from simulations.checks.dynamics import ISSUE_SPECTRUM, issue_family
from tests.helpers import assert_close
from theory import anil_width, dynamics, shallow_maml
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily


def anisotropic_family(seed: int = 3, dim: int = 4) -> LinearTaskFamily:
    rng = np.random.default_rng(seed)
    a, f = rng.standard_normal((dim, dim)) / 2, rng.standard_normal((dim, dim)) / 2
    return LinearTaskFamily.from_covariances(dim, 3, 10, task_cov=0.2 * np.eye(dim) + f @ f.T,
                                             input_cov=0.5 * np.eye(dim) + a @ a.T,
                                             task_mean=rng.standard_normal(dim), noise_var=0.3)


def _gradient(loss, theta: np.ndarray, h: float = 1e-4) -> np.ndarray:
    """Central differences: exact for a quadratic up to rounding."""
    eye = np.eye(len(theta))
    return np.array([(loss(theta + h * e) - loss(theta - h * e)) / (2 * h) for e in eye])


@pytest.mark.parametrize("steps, isotropic", [(1, False), (3, True), (2, False)])
def test_shallow_flow_is_the_integrated_gradient_flow_of_the_exact_loss(steps, isotropic):
    family = (LinearTaskFamily.subspace(5, 4, 10, rank=2, seed=1, noise_var=0.2, mean_norm=0.7) if isotropic
              else anisotropic_family())
    alpha = 0.5 * shallow_maml.optimal_step_size(family)
    theta0 = family.task_mean + np.linspace(-1, 1, family.dim)
    times = np.array([0.0, 0.3, 1.0, 3.0])
    curve = dynamics.shallow_flow(family, theta0, alpha, times, steps)

    def loss(theta):
        return shallow_maml.post_adaptation_loss(family, theta, alpha, steps)

    sol = solve_ivp(lambda _, th: -_gradient(loss, th), (0, times[-1]), theta0, t_eval=times, rtol=1e-10, atol=1e-12)
    assert_close(curve.loss, [loss(th) for th in sol.y.T], tol=1e-7, what="closed-form flow vs integrated flow")
    assert curve.limit == pytest.approx(loss(family.task_mean), rel=1e-12)


def test_the_recursion_starts_at_the_flow_tends_to_it_and_diverges_beyond_the_stability_limit():
    family = anisotropic_family()
    alpha = shallow_maml.optimal_step_size(family)
    theta0 = family.task_mean + 1.0
    limit = dynamics.stability_limit(dynamics.shallow_hessian(family, alpha))
    flow = dynamics.shallow_flow(family, theta0, alpha, [0.0, 2.0])
    fine = dynamics.shallow_recursion(family, theta0, alpha, 1e-3, [0, 2000])
    assert fine[0] == pytest.approx(flow.loss[0], rel=1e-14)
    assert abs(fine[1] - flow.loss[1]) < 1e-3 * (flow.loss[0] - flow.limit)
    stable = dynamics.shallow_recursion(family, theta0, alpha, 0.95 * limit, [0, 400])
    unstable = dynamics.shallow_recursion(family, theta0, alpha, 1.05 * limit, [0, 400])
    assert stable[1] < stable[0] and unstable[1] > 10 * unstable[0]


def test_shallow_maml_is_slower_than_joint_training_by_h_exactly():
    family = LinearTaskFamily.subspace(20, 5, 10, rank=2, seed=0)
    alpha = shallow_maml.optimal_step_size(family)
    h = dynamics.isotropic_slowdown(20, 5, alpha)
    assert h == pytest.approx((20 + 1) / (5 + 20 + 1), rel=1e-12)  # at α*, h = 1 − α*
    theta0, times = family.task_mean + 0.5, np.array([0.0, 0.5, 2.0])
    maml = dynamics.shallow_flow(family, theta0, alpha, times)
    joint = dynamics.shallow_flow(family, theta0, 0.0, times)
    ratio = (maml.loss - maml.limit) / (joint.loss - joint.limit)
    assert_close(ratio / ratio[0], np.exp(-2 * (h - 1) * times), tol=1e-12)


def test_the_formulas_curvature_is_h_symbolically():
    import sympy as sp

    from theory.latex import formulas, isotropic_curvature

    h = isotropic_curvature()
    symbols = {str(s): s for s in h.free_symbols}
    alpha, d, k = symbols["alpha"], symbols["d"], symbols["K"]
    assert sp.simplify(h - ((1 - alpha) ** 2 + alpha**2 * (d + 1) / k)) == 0
    assert float(h.subs({alpha: 0.3, d: 20, k: 5})) == pytest.approx(dynamics.isotropic_slowdown(20, 5, 0.3))
    assert any("gradient flow" in title for title in formulas())


def test_anil_modes_are_logistic_with_commuting_covariances_and_any_width():
    family = LinearTaskFamily.from_covariances(5, 3, 10, task_cov=np.diag([1.5, 0.0, 0.4, 0.9, 0.05]),
                                               input_cov=np.diag([0.5, 2.0, 1.0, 1.3, 0.8]), noise_var=0.2)
    times = np.geomspace(0.05, 2000, 15)
    for width in (2, 5):
        w0 = dynamics.anil_start(family, width, 0.2)
        curve = dynamics.anil_flow(family, 0.3, times, w0=w0)
        assert curve.method == dynamics.CLOSED_FORM
        integrated = [dynamics.anil_loss_of_q(family, q) for q in dynamics.integrate_anil(family, 0.3, w0, times)]
        assert_close(curve.loss, integrated, tol=1e-8)
        assert curve.limit == pytest.approx(anil_width.rank_limited_best_post_loss(family, width), rel=1e-10)


def test_anil_switch_on_time_is_where_the_mode_is_half_learned_and_an_unused_direction_decays_algebraically():
    family, alpha = issue_family(), 0.1
    modes = dynamics.anil_modes(family, alpha, dynamics.anil_start(family, 6, 0.1))
    star = modes.a / np.where(modes.b > 0, modes.b, 1)
    for i, t in enumerate(modes.switch_on_times()):
        assert modes.q(np.array([t]))[0, i] == pytest.approx(star[i] / 2, rel=1e-12)
    assert modes.switch_on_times() == tuple(sorted(modes.switch_on_times()))  # strongest direction first
    last = len(ISSUE_SPECTRUM) - 1  # Σw's null direction: q(t) = q(0)/(1 + 4αb q(0) t)
    t, q0 = 1e5, modes.q0[last]
    assert modes.q(np.array([t]))[0, last] == pytest.approx(q0 / (1 + 4 * alpha * modes.b[last] * q0 * t))


def test_anil_without_a_closed_form_is_integrated_and_labelled_and_mu_must_be_zero():
    rng = np.random.default_rng(0)
    u = np.linalg.qr(rng.standard_normal((4, 4)))[0]
    family = LinearTaskFamily.from_covariances(4, 3, 10, task_cov=u @ np.diag([1, 0.5, 0.2, 0]) @ u.T,
                                               input_cov=np.diag([1, 2, 3, 4.0]))
    curve = dynamics.anil_flow(family, 0.2, [0.0, 10.0, 100.0], width=2)
    assert curve.method.startswith(dynamics.INTEGRATED) and np.isnan(curve.limit)
    assert np.all(np.diff(curve.loss) < 0)
    with pytest.raises(ParameterError, match="mean_norm"):
        dynamics.anil_flow(anisotropic_family(), 0.2, [1.0], width=2)


def test_depth2_flow_all_starts_at_once_equals_one_by_one_and_only_descends():
    family = LinearTaskFamily.subspace(4, 3, 10, rank=2, seed=2, noise_var=0.1)
    rng = np.random.default_rng(5)
    w1, w2 = rng.standard_normal((3, 2, 4)) / 2, rng.standard_normal((3, 1, 2)) / 2
    together = dynamics.depth2_flow(family, w1, w2, 0.3, 50.0, times=[0.0, 1.0, 10.0, 50.0])
    from theory.depth2_maml import depth2_post_adaptation_loss

    for i in range(3):
        alone = dynamics.depth2_flow(family, w1[i:i + 1], w2[i:i + 1], 0.3, 50.0)
        assert alone.loss[0] == pytest.approx(together.loss[i], abs=1e-6)
        assert together.curve[0, i] == pytest.approx(depth2_post_adaptation_loss(family, w1[i], w2[i], 0.3),
                                                     rel=1e-12)
    assert np.all(np.diff(together.curve, axis=0) <= 1e-12)
    assert together.method.startswith(dynamics.INTEGRATED)


def _json(capsys, *argv):
    assert paper_repro.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_dynamics_command_anil_on_the_issue_setting(capsys):
    out = _json(capsys, "dynamics", "--model", "anil", "--dim", "6", "--task-spectrum",
                ",".join(map(str, ISSUE_SPECTRUM)), "--support", "4", "--noise", "0.25", "--alpha", "0.1",
                "--init-scale", "0.1")
    assert out["method"] == "closed form" and len(out["switch_on_times"]) == 5
    assert out["limit"] == pytest.approx(anil_width.rank_limited_best_post_loss(issue_family(), 6), rel=1e-12)
    assert out["times"][0] == 0 and np.all(np.diff(out["loss"]) <= 0)
    assert out["recursion"]["iterations"] == [round(t / out["meta_lr"]) for t in out["times"]]


def test_dynamics_command_shallow_reports_the_slowdown_and_its_sgd_twin_agrees(capsys):
    out = _json(capsys, "dynamics", "--dim", "10", "--support", "5", "--times", "0,0.5,2", "--simulate",
                "--seeds", "3", "--eval-tasks", "500", "--meta-batch", "200")
    family = LinearTaskFamily.subspace(10, 5, 20, rank=2, seed=0)
    alpha = shallow_maml.optimal_step_size(family)
    assert out["slowdown"] == pytest.approx((1 - alpha) ** 2 + alpha**2 * 11 / 5, rel=1e-12)
    assert out["simulation"]["iterations"] == [0, 5, 20]
    assert all(out["simulation"]["inside"]), out["simulation"]


def test_dynamics_command_depth2_reports_basin_fractions(capsys):
    out = _json(capsys, "dynamics", "--model", "depth2", "--dim", "4", "--support", "3", "--width", "2",
                "--init-scale", "1", "--starts", "3", "--times", "0,20")
    (cell,) = out["basins"]
    assert cell["width"] == 2 and cell["starts"] == 3 and 0 <= cell["reached"] <= 3
    assert cell["ci95"][0] <= cell["fraction"] <= cell["ci95"][1]
    assert cell["optimum"] <= min(v for v, _ in cell["end_values"]) + 1e-4


@pytest.mark.parametrize("check", REGISTRY["dynamics"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("dynamics.") and result.passed, result


def test_dynamics_command_with_a_flat_objective(capsys):
    """K = ∞, Σx = I, α* = 1: one step lands on every task's w_τ, so H = 0 and every loss is 0."""
    out = _json(capsys, "dynamics", "--support", "inf")
    assert out["stability_limit"] == "inf" and out["slowdown"] == 0.0
    assert max(out["loss"]) == 0.0 and out["limit"] == 0.0
