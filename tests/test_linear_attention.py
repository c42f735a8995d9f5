"""theory.linear_attention, in-context learning by one linear self-attention layer: Γ* against the loss it
minimises, its special cases (the shallow model's α*, the population Newton step), the loss at other context
lengths, the stacked construction, and the literal attention layer (simulations/twins/linear_attention.py)
through the verify checks."""
from __future__ import annotations

import numpy as np
import pytest

from simulations.checks import MIN_SCALE, REGISTRY
from simulations.checks.fixtures import random_spd
from tests.helpers import assert_close
from theory import linear_attention, shallow_maml
from theory.ground.errors import ParameterError
from theory.task_family import LinearTaskFamily


def anisotropic_family(context=6, mean=True, noise_var=0.3) -> LinearTaskFamily:
    rng = np.random.default_rng(11)
    return LinearTaskFamily.from_covariances(4, context, 10, task_cov=random_spd(4, rng) / 2,
                                             input_cov=random_spd(4, rng),
                                             task_mean=rng.standard_normal(4) / 2 if mean else None,
                                             noise_var=noise_var)


@pytest.mark.parametrize("mean", [True, False])
def test_gamma_star_minimises_the_exact_loss(mean):
    family = anisotropic_family(mean=mean)
    star = linear_attention.optimal_gamma(family)
    best = linear_attention.icl_loss(family, star)
    rng = np.random.default_rng(0)
    for _ in range(20):
        bump = rng.standard_normal((4, 4)) * 1e-3
        assert linear_attention.icl_loss(family, star + bump) > best
    # the loss is quadratic in Γ: its finite-difference gradient at Γ* vanishes
    eye = np.eye(4)
    grad = [(linear_attention.icl_loss(family, star + 1e-5 * np.outer(eye[i], eye[j]))
             - linear_attention.icl_loss(family, star - 1e-5 * np.outer(eye[i], eye[j]))) / 2e-5
            for i in range(4) for j in range(4)]
    assert np.max(np.abs(grad)) < 1e-8


def test_gamma_star_is_the_shallow_optimal_step_for_isotropic_tasks_without_noise():
    family = LinearTaskFamily.from_covariances(7, 5, 10, task_cov=np.eye(7))
    gamma = linear_attention.optimal_gamma(family)
    assert_close(gamma, linear_attention.isotropic_gamma(7, 5) * np.eye(7), tol=1e-12)
    assert linear_attention.isotropic_gamma(7, 5) == pytest.approx(5 / (5 + 7 + 1))
    assert linear_attention.isotropic_gamma(7, 5) == pytest.approx(shallow_maml.optimal_step_size(family), rel=1e-12)


def test_a_scalar_gamma_is_the_shallow_models_step_from_zero():
    family = anisotropic_family()
    for gamma in (0.05, 0.2):
        assert linear_attention.icl_loss(family, gamma) == pytest.approx(
            shallow_maml.post_adaptation_loss(family, np.zeros(4), gamma, 1), rel=1e-12)
        assert linear_attention.stacked_layers_loss(family, gamma, 1) == pytest.approx(
            linear_attention.icl_loss(family, gamma), rel=1e-12)


def test_context_length_trained_at_n_tested_at_m():
    family = anisotropic_family(context=6)
    for m in (3, 6, 12, 48):
        own = linear_attention.optimal_icl_loss(linear_attention.at_context(family, m))
        assert linear_attention.optimal_icl_loss(family, m) >= own - 1e-12  # Γ*_M is best at M
    assert linear_attention.optimal_icl_loss(family, 6) == pytest.approx(linear_attention.optimal_icl_loss(family))


def test_infinite_context_is_the_population_newton_step():
    family = anisotropic_family(context=float("inf"), mean=False)
    assert_close(linear_attention.optimal_gamma(family), np.linalg.inv(family.input_cov), tol=1e-10)
    assert linear_attention.optimal_icl_loss(family) == pytest.approx(0.5 * family.noise_var, rel=1e-10)


def test_bad_gamma_names_the_parameter():
    with pytest.raises(ParameterError, match="gamma"):
        linear_attention.icl_loss(anisotropic_family(), np.eye(3))
    with pytest.raises(ParameterError, match="layers"):
        linear_attention.stacked_layers_loss(anisotropic_family(), 0.1, 0)


@pytest.mark.parametrize("check", REGISTRY["linear_attention"], ids=lambda c: c.name)
def test_verify_checks_pass_at_small_scale(check):
    result = check(MIN_SCALE)
    assert result.name.startswith("linear_attention.") and result.passed, result


def _json(capsys, *argv):
    import json

    import paper_repro

    assert paper_repro.main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_in_context_command_prints_the_closed_forms_and_its_trained_layers_agree(capsys):
    spectrum = [k / 15 for k in range(1, 6)]
    out = _json(capsys, "in-context", "--dim", "5", "--context", "20", "--input-spectrum",
                ",".join(map(str, spectrum)), "--simulate", "--seeds", "2", "--iterations", "300", "--eval-tasks",
                "2000")
    family = LinearTaskFamily.from_covariances(5, 20, 10, task_cov=np.eye(5), input_cov=np.diag(spectrum))
    assert_close(np.asarray(out["gamma_star"]), linear_attention.optimal_gamma(family), tol=1e-12)
    assert [r["test_context"] for r in out["rows"]] == [10, 20, 40]
    for row in out["rows"]:
        assert row["test_loss"] == pytest.approx(linear_attention.optimal_icl_loss(family, row["test_context"]))
        assert np.isfinite(row["simulated_loss"]) and row["ci95"] > 0


def test_in_context_stacked_layers_use_the_step_learned_at_n(capsys):
    out = _json(capsys, "in-context", "--layers", "3", "--test-context", "10,20")
    family = LinearTaskFamily.from_covariances(5, 20, 10, task_cov=np.eye(5))
    step = shallow_maml.optimal_step_size(family, 3)
    for row in out["rows"]:
        assert row["stacked_loss"] == pytest.approx(
            linear_attention.stacked_layers_loss(family, 3 * step, 3, row["test_context"]), rel=1e-12)
    assert out["rows"][1]["stacked_loss"] < out["rows"][1]["test_loss"]  # three steps beat one at N
