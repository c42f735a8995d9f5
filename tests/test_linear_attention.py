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


# -- paper_repro.py in-context --input-cov FILE --------------------------------------------------------
def _rotated_inputs(dim: int = 4) -> np.ndarray:
    """A non-diagonal Λ = U diag(λ) Uᵀ (U a seeded random rotation), (d, d), exactly symmetric: as the file reader
    symmetrises, so that the family built here holds the very matrix the command reads (the best step size of
    the stacked layers is a golden-section minimum of a loss flat to √ε there: a 1-ulp change of Λ moved the stacked
    loss at M ≠ N by 3e-8 relative)."""
    u = np.linalg.qr(np.random.default_rng(5).standard_normal((dim, dim)))[0]
    lam = u @ np.diag(np.linspace(0.3, 3.0, dim)) @ u.T
    return 0.5 * (lam + lam.T)


@pytest.mark.parametrize("text", [True, False], ids=["text", "npy"])
def test_in_context_reads_a_non_diagonal_input_covariance_from_a_file(tmp_path, capsys, text):
    """Γ*, the exact loss at each M and the stacked layers' loss from a rotated Λ in a file are those of the
    LinearTaskFamily built with that Λ directly (noise and task variance not at their defaults)."""
    lam = _rotated_inputs()
    path = tmp_path / ("lam.txt" if text else "lam.npy")
    np.savetxt(path, lam, fmt="%.17g") if text else np.save(path, lam)
    out = _json(capsys, "in-context", "--dim", "4", "--context", "7", "--input-cov", str(path), "--noise", "0.2",
                "--task-var", "0.5", "--layers", "2", "--test-context", "3,7,30")
    family = LinearTaskFamily.from_covariances(4, 7, 10, task_cov=0.5 * np.eye(4), input_cov=lam, noise_var=0.2)
    star = linear_attention.optimal_gamma(family)
    assert np.abs(star - np.diag(np.diag(star))).max() > 0.01, "Λ is rotated, so Γ* is not diagonal"
    assert_close(np.asarray(out["gamma_star"]), star, tol=1e-12)
    step = shallow_maml.optimal_step_size(family, 2)
    for row in out["rows"]:
        m = row["test_context"]
        assert row["test_loss"] == pytest.approx(linear_attention.icl_loss(family, star, m), rel=1e-12)
        assert row["stacked_loss"] == pytest.approx(linear_attention.stacked_layers_loss(family, 2 * step, 2, m),
                                                    rel=1e-12)
    assert out["config"]["input_cov"] == str(path)


def test_in_context_identity_file_is_the_default(capsys):
    """tests/data/identity_50.txt (Λ = I, d = 50) gives exactly the default's numbers; the text says where Λ is from."""
    argv = ["in-context", "--dim", "50", "--context", "30", "--layers", "2"]
    default, from_file = _json(capsys, *argv), _json(capsys, *argv, "--input-cov", "tests/data/identity_50.txt")
    assert from_file["gamma_star"] == default["gamma_star"] and from_file["rows"] == default["rows"]
    import paper_repro

    assert paper_repro.main([*argv, "--input-cov", "tests/data/identity_50.txt"]) == 0
    text = capsys.readouterr().out
    assert "Λ from tests/data/identity_50.txt" in text
    assert paper_repro.main(argv) == 0
    assert "Λ = I," in capsys.readouterr().out


def test_in_context_text_report_of_a_rotated_input_covariance(tmp_path, capsys):
    """Γ* of a rotated Λ is not diagonal: the text gives its eigenvalues (Λ's eigenvectors), largest first."""
    import paper_repro

    lam = _rotated_inputs()
    np.save(tmp_path / "lam.npy", lam)
    assert paper_repro.main(["in-context", "--dim", "4", "--input-cov", str(tmp_path / "lam.npy")]) == 0
    text = capsys.readouterr().out
    assert f"Λ from {tmp_path / 'lam.npy'}" in text
    family = LinearTaskFamily.from_covariances(4, 20, 10, task_cov=np.eye(4), input_cov=lam)
    eigenvalues = np.linalg.eigvalsh(linear_attention.optimal_gamma(family))[::-1]
    assert "eigenvalues: " + ", ".join(f"{v:.5g}" for v in eigenvalues) in text


@pytest.mark.parametrize(("scale", "words"), [(1e13, "(the file's lie in [1e+13, 1e+13])"),
                                              (1e-13, "(the file's lie in [1e-13, 1e-13])")])
def test_in_context_input_cov_eigenvalues_have_the_spectrums_bounds(tmp_path, capsys, scale, words):
    """The file's eigenvalues must lie in (1e-12, 1e12], the bounds of --input-spectrum: one line naming --input-cov."""
    import paper_repro

    np.savetxt(tmp_path / "lam.txt", scale * np.eye(3))
    assert paper_repro.main(["in-context", "--dim", "3", "--input-cov", str(tmp_path / "lam.txt")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith("paper_repro.py: error: argument --input-cov: ") and "(1e-12, 1e12]" in err and words in err


def test_in_context_input_cov_in_the_python_api(tmp_path):
    """InContextConfig reads the file once, when built; the family holds its (symmetrised) matrix."""
    from simulations.experiments.in_context import InContextConfig

    lam = _rotated_inputs(3)
    np.savetxt(tmp_path / "lam.txt", lam, fmt="%.17g")
    config = InContextConfig(dim=3, input_cov=str(tmp_path / "lam.txt"))
    assert_close(config.family().input_cov, lam, tol=1e-12)
    with pytest.raises(ParameterError, match="input_spectrum") as err:
        InContextConfig(dim=3, input_cov=str(tmp_path / "lam.txt"), input_spectrum=(1.0, 1.0, 1.0))
    assert err.value.parameter == "input_spectrum"
