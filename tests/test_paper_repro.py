"""The command line (paper_repro.py): one-line errors with exit status 2, explore against the closed
forms of theory/, determinism at a fixed seed, and verify's JSON table and exit status.

Most cases call ``paper_repro.main`` in-process (capsys holds stdout and stderr); a few run the
script as a real subprocess to check the exit status and that no traceback reaches stderr.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import paper_repro
from figures.registry import FIGURES
from tests.helpers import assert_close
from theory import preconditioned_maml as pre
from theory import shallow_maml as sh
from theory.task_family import LinearTaskFamily

VALID_FIGURES = "valid: " + ",".join(map(str, sorted(FIGURES)))

ROOT = Path(__file__).resolve().parent.parent
IDENTITY_TOL = 1e-12  # float64: the CLI prints the very closed forms recomputed here
TINY = ["--dim", "10", "--support", "5", "--rank", "2", "--iterations", "150", "--eval-tasks", "400",
        "--depth", "2", "--width", "16"]  # about 1 s per run on one thread


def _script(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run paper_repro.py as a subprocess from the repository root (one torch thread, Agg backend)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    return subprocess.run([sys.executable, "paper_repro.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.split("\n") if line.startswith("paper_repro.py: error:")]


# -- bad input: exit 2, one line naming the option and its valid range -----------------------------
BAD_INPUT = [  # (argv, the flag the message must name, words of the range description)
    (["explore", "--dim", "0"], "--dim", ">= 1"),
    (["explore", "--dim", "abc"], "--dim", "not an integer"),
    (["explore", "--rank", "60"], "--rank", "<= 50"),
    (["explore", "--noise", "-1"], "--noise", ">= 0"),
    (["explore", "--alpha", "0"], "--alpha", "(0, 1000]"),
    (["explore", "--alpha", "1e308", "--theory-only"], "--alpha", "(0, 1000]"),
    (["explore", "--seed", "-1"], "--seed", ">= 0"),
    (["--seed", "-1", "--only", "6"], "--seed", ">= 0"),
    (["bench", "--threads", "0"], "--threads", ">= 1"),
    (["--replot", "--only", "6", "--out", "/nonexistent/dir"], "--replot", "no cached results"),
    (["explore", "--alpha", "nan"], "--alpha", "not a finite number"),
    (["explore", "--support", "0"], "--support", ">= 1"),
    (["explore", "--iterations", "-1"], "--iterations", ">= 0"),
    (["explore", "--bogus", "1"], "--bogus", "unrecognized"),
    (["--only", "9"], "--only", VALID_FIGURES),
    (["--only", "x"], "--only", VALID_FIGURES),
    (["verify", "--scale", "0.05"], "--scale", ">= 0.3"),
]


@pytest.mark.parametrize(("argv", "flag", "valid"), BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(argv, flag, valid, capsys):
    assert paper_repro.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert err.startswith("paper_repro.py: error: "), err
    assert flag in err, f"{err!r} does not name {flag}"
    assert valid in err, f"{err!r} does not describe the valid range ({valid!r})"


def test_bad_input_subprocess_has_no_traceback():
    proc = _script("explore", "--dim", "0")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr == "paper_repro.py: error: argument --dim: 0 is out of range: an integer >= 1\n"


def test_diverging_step_exits_2_naming_alpha():
    """α = 3 with 6 inner steps blows the deep model's meta-loss up: a usage error, not a traceback."""
    proc = _script("explore", "--alpha", "3", "--steps", "6", "--iterations", "5", "--eval-tasks", "10")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = _error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert errors[0].startswith("paper_repro.py: error: argument --alpha: 3 makes meta-training diverge")
    assert "use a step in (0, " in errors[0]  # the range: (0, 2α*), where one shallow step helps
    # anything else on stderr is progress-bar residue, never a second message
    others = [line for line in proc.stderr.split("\n") if line.strip() and line not in errors]
    assert all("it/s" in line for line in others), others


# -- explore --theory-only: the closed forms of theory/ -------------------------------------------
def _explore_json(argv: list[str], capsys) -> dict:
    assert paper_repro.main(["explore", "--json", *argv]) == 0
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return json.loads(out)  # exactly one JSON object, nothing else on stdout


THEORY_KEYS = ("pre_adaptation_loss", "shallow_post_loss", "shallow_optimal_alpha", "shallow_best_post_loss",
               "preconditioned_best_post_loss")


@pytest.mark.parametrize(("argv", "dim", "support", "rank"), [
    ([], 50, 5, 2),  # the defaults
    (["--dim", "12", "--support", "7", "--rank", "3"], 12, 7, 3),
], ids=["defaults", "d12-K7-r3"])
def test_theory_only_matches_closed_forms(argv, dim, support, rank, capsys):
    report = _explore_json(["--theory-only", *argv], capsys)
    assert report["simulation"] == {}
    theory = report["theory"]
    assert set(THEORY_KEYS) <= set(theory)
    family = LinearTaskFamily.subspace(dim, support, 20, rank=rank, seed=0)
    mu, alpha = family.task_mean, sh.optimal_step_size(family)
    expected = {"pre_adaptation_loss": sh.pre_adaptation_loss(family, mu),
                "shallow_post_loss": sh.post_adaptation_loss(family, mu, alpha),
                "shallow_optimal_alpha": alpha,
                "shallow_best_post_loss": sh.best_post_adaptation_loss(family),
                "preconditioned_best_post_loss": pre.preconditioned_best_post_loss(family)}
    for key, value in expected.items():
        assert_close(theory[key], value, IDENTITY_TOL, f"theory.{key}")
    # the documented isotropic forms (Σx = I, Σw = UUᵀ of rank r, s² = 0, θ = μ)
    d, k, r = dim, support, rank
    assert_close(theory["pre_adaptation_loss"], r / 2, IDENTITY_TOL, "L_pre = r/2")
    assert_close(theory["shallow_optimal_alpha"], k / (k + d + 1), IDENTITY_TOL, "α* = K/(K+d+1)")
    assert_close(theory["shallow_best_post_loss"] / theory["pre_adaptation_loss"], (d + 1) / (k + d + 1),
                 IDENTITY_TOL, "best/pre = (d+1)/(K+d+1)")
    assert_close(theory["preconditioned_best_post_loss"], 0.5 * r * (r + 1) / (k + r + 1), IDENTITY_TOL,
                 "preconditioned best = ½ r(r+1)/(K+r+1)")
    assert theory["shallow_post_loss"] == theory["shallow_best_post_loss"]  # α defaults to α*


def test_theory_only_text_report(capsys):
    assert paper_repro.main(["explore", "--theory-only"]) == 0
    out, err = capsys.readouterr()
    assert "Theory (at the MAML-optimal initialisation θ* = μ):" in out
    assert "0.9107" in out and "0.3750" in out  # 51/56 and ½·2·3/8 at d=50, K=5, r=2
    assert "Simulation" not in out and "Traceback" not in err


# -- explore with training: the tiny setting ----------------------------------------------------
@pytest.fixture(scope="module")
def tiny_explore():
    """Two runs of the tiny explore in-process, same seed (stdout captured by hand: capsys is per test)."""
    import contextlib
    import io

    reports = []
    for _ in range(2):
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            assert paper_repro.main(["explore", "--json", *TINY]) == 0
        reports.append(json.loads(buffer.getvalue()))
    return reports


def test_tiny_explore_reports_finite_losses(tiny_explore):
    sim = tiny_explore[0]["simulation"]
    assert set(sim) == {"shallow", "deep", "linnet", "kfo"}  # the default --models
    for name, r in sim.items():
        for key in ("pre_loss", "pre_loss_ci95", "post_loss", "post_loss_ci95"):
            assert math.isfinite(r[key]), f"{name}.{key} = {r[key]}"
        assert r["post_loss"] < r["pre_loss"], f"{name}: one step at α* should lower the loss"


def test_tiny_explore_remedies_beat_shallow(tiny_explore):
    """The failure mode: at α* the deep, LinNet and KFO models adapt better than the shallow model,
    and better than any scalar step could from the shallow model's optimum (theory: 11/16 · L_pre)."""
    report = tiny_explore[0]
    sim, best_shallow = report["simulation"], report["theory"]["shallow_best_post_loss"]
    shallow = sim["shallow"]
    for name in ("deep", "linnet", "kfo"):
        upper = sim[name]["post_loss"] + sim[name]["post_loss_ci95"]
        assert upper < shallow["post_loss"] - shallow["post_loss_ci95"], (
            f"{name} {sim[name]['post_loss']:.4f} ± {sim[name]['post_loss_ci95']:.4f} vs shallow "
            f"{shallow['post_loss']:.4f} ± {shallow['post_loss_ci95']:.4f}")
        assert upper < best_shallow, f"{name}: upper 95% bound {upper:.4f} not below {best_shallow:.4f}"


def test_tiny_explore_is_deterministic(tiny_explore):
    first, second = tiny_explore
    assert first == second  # every number, bit for bit


# -- verify: the JSON table and the exit status ---------------------------------------------------
def test_verify_json_and_exit_status(tmp_path):
    path = tmp_path / "verify.json"
    proc = _script("verify", "--json", str(path), "--scale", "0.3", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    table = json.loads(path.read_text())
    assert isinstance(table, list) and table
    for row in table:
        assert {"name", "theory", "simulation", "passed"} <= set(row), row
        assert isinstance(row["passed"], bool)
    failed = [row["name"] for row in table if not row["passed"]]
    assert proc.returncode == (1 if failed else 0), (proc.returncode, failed)
    assert not failed, f"at --scale 0.3 every closed form should meet its simulation twin: {failed}"
    assert f"{len(table) - len(failed)} passed, {len(failed)} failed" in proc.stdout
    # float64/sympy identities do not depend on the sample size: they pass at any scale
    assert all(row["passed"] for row in table if row["kind"] == "identity"), failed
