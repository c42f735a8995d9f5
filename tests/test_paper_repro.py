"""The command line (paper_repro.py): every option of every subcommand reaches its config, options
before a subcommand are refused, one-line errors with exit status 2, explore against the closed
forms of theory/, determinism at a fixed seed, and verify's JSON table and exit status.

Most cases call ``paper_repro.main`` in-process (capsys holds stdout and stderr); a few run the
script as a real subprocess to check the exit status and that no traceback reaches stderr.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

import paper_repro
from figures.registry import FiguresConfig
from tests.bad_input import BAD_INPUT
from tests.helpers import assert_close
from theory import preconditioned_maml, shallow_maml
from theory.bayes_floor import bayes_optimal_loss
from theory.fixed_points import TaskGroup
from theory.ground.options import flag_of
from theory.task_family import LinearTaskFamily

TABLE_COMMANDS = ("figures", "compare", "verify", "explore", "bench", "formulas", "vision", "finite-tasks",
                  "fixed-points", "dynamics", "in-context")  # covered by tests/bad_input.py (app: test_explorer.py)
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


# -- every option reaches the config its subcommand builds ------------------------------------------
# fields whose generic non-default value (below) would be invalid (the spectra need exactly d = 50 values)
EXAMPLES = {"device": "cuda:0", "support": 6, "task_spectrum": (1.0,) * 50, "input_spectrum": (2.0,) * 50,
            "train_alpha": (0.5, -0.5), "times": (1.0, 2.5), "test_context": (7, 9),
            "task_cov": "tests/data/identity_50.txt", "input_cov": "tests/data/identity_50.txt"}  # d = 50
CONTEXT = {("dynamics", "width"): ["--model", "depth2"],  # options that mean something only for another model
           ("dynamics", "starts"): ["--model", "depth2"],
           ("dynamics", "threads"): ["--model", "depth2"],  # the shallow and ANIL closed forms use no torch
           ("in-context", "threads"): ["--simulate"],  # nor do the in-context closed forms
           ("in-context", "input_spectrum"): ["--dim", "50"],  # EXAMPLES' spectrum has d = 50 values
           ("in-context", "input_cov"): ["--dim", "50"]}  # and its covariance file a 50 × 50 matrix
REPEATED = {"groups": (["prob=0.3,input-var=2,task-mean=1", "--group", "prob=0.7,input-var=1,task-mean=0,task-var=1"],
                       (TaskGroup(0.3, 2.0, 1.0), TaskGroup(0.7, 1.0, 0.0, 1.0)))}  # options given once per element


def _non_default(field: dataclasses.Field, hint) -> tuple[list[str], object]:
    """(the option's arguments, the value the config must then hold), always different from the default."""
    default, choices = field.default, field.metadata.get("choices")
    kind = typing.get_args(hint)[0] if type(None) in typing.get_args(hint) else hint
    if kind is bool:
        return [], True
    if field.metadata.get("repeat"):
        return REPEATED[field.name]
    if field.name in EXAMPLES and isinstance(EXAMPLES[field.name], tuple):
        return [",".join(map(str, EXAMPLES[field.name]))], EXAMPLES[field.name]
    if field.name in EXAMPLES:
        value = EXAMPLES[field.name]
    elif typing.get_origin(kind) is tuple:
        value = next((c,) for c in choices if (c,) != default) if choices else ("x-value",)
        return [",".join(map(str, value))], value
    elif choices:
        value = next(c for c in choices if c != default)
    elif kind is int:
        value = 3 if default is None else default + 1
    elif kind is float:
        value = 0.25 if default is None else (2 * default or 0.5)
    else:
        value = "x-value"
    return [repr(value) if isinstance(value, float) else str(value)], value


OPTIONS = [(command, config, field.name) for command in paper_repro.COMMANDS
           for config in paper_repro.config_classes(command) for field in dataclasses.fields(config)]


@pytest.mark.parametrize(("command", "config", "name"), OPTIONS,
                         ids=[f"{c}-{flag_of(next(f for f in dataclasses.fields(k) if f.name == n))}"
                              for c, k, n in OPTIONS])
def test_every_option_reaches_the_config(command, config, name):
    """Each config field is an option of its subcommand, and a non-default value given on the command
    line is the value the handler's config holds (no training runs: parse only)."""
    field = next(f for f in dataclasses.fields(config) if f.name == name)
    args, expected = _non_default(field, typing.get_type_hints(config)[name])
    assert expected != field.default
    positional = [f for k in paper_repro.config_classes(command) for f in dataclasses.fields(k)
                  if f.metadata.get("positional")]
    given = args if field in positional else [flag_of(field), *args]  # a positional argument has no flag
    needed = field.metadata.get("only_with")  # the mode in which the option means something (--runs: --simulate)
    if needed is not None:
        other = next(f for f in dataclasses.fields(config) if f.name == needed)
        given += [flag_of(other), *_non_default(other, typing.get_type_hints(config)[needed])[0]]
    required = [str(f.default) for f in positional if f is not field]  # the others, at their (dataclass) default
    context = CONTEXT.get((command, name), [])
    parsed_command, built, output = paper_repro.parse([command, *required, *given, *context])
    assert parsed_command == command
    target = output if config is paper_repro.Output else built
    assert isinstance(target, config)
    assert getattr(target, name) == expected
    others = [f.name for f in dataclasses.fields(config) if f.name not in (name, needed)
              and flag_of(f) not in context]
    assert all(getattr(target, n) == getattr(config(), n) for n in others), "another field changed"


def test_bare_command_line_is_every_figure_quick():
    assert paper_repro.parse([])[:2] == ("figures", FiguresConfig())
    command, config, _ = paper_repro.parse(["--full", "--only", "1,4"])
    assert command == "figures" and config.full and config.only == (1, 4)
    assert paper_repro.parse(["--out", "verify"])[1].out == "verify"  # a folder named like a subcommand


MISPLACED = [  # options before the subcommand name were silently ignored once
    (["--seed", "5", "explore"], "--seed", "paper_repro.py explore --seed 5"),
    (["--threads", "3", "bench"], "--threads", "paper_repro.py bench --threads 3"),
    (["--seed", "7", "vision"], "--seed", "paper_repro.py vision --seed 7"),
    (["--json", "explore"], "--json", "paper_repro.py explore --json"),
]
FOREIGN = [  # options before a subcommand that does not take them: moving them after it would not help
    (["--out", "X", "formulas"], "--out", "an option of the figures, not of formulas"),  # formulas has --output
    (["--only", "1", "explore"], "--only", "an option of the figures, not of explore"),
    (["--only=3", "verify"], "--only", "an option of the figures, not of verify"),
    (["--full", "verify", "--scale", "0.3"], "--full", "an option of the figures, not of verify"),
    (["--bogus", "verify"], "--bogus", "not an option of verify"),
]


@pytest.mark.parametrize(("argv", "flag", "hint"), MISPLACED, ids=[" ".join(a) for a, _, _ in MISPLACED])
def test_options_before_the_subcommand_exit_2_naming_the_option(argv, flag, hint, capsys):
    assert paper_repro.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err == f"paper_repro.py: error: argument {flag}: options go after the subcommand: {hint}\n", err


@pytest.mark.parametrize(("argv", "flag", "text"), FOREIGN, ids=[" ".join(a) for a, _, _ in FOREIGN])
def test_an_option_the_subcommand_lacks_is_not_suggested_after_it(argv, flag, text, capsys):
    """`--only=3 verify` once suggested `verify --only=3`, which verify does not take."""
    assert paper_repro.main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert err.startswith(f"paper_repro.py: error: argument {flag}: {text} (options go after the subcommand; "), err


def test_threads_are_applied(capsys):
    before = torch.get_num_threads()
    try:
        assert paper_repro.main(["dynamics", "--model", "depth2", "--dim", "3", "--width", "1", "--starts", "1",
                                 "--times", "0,1", "--json", "--threads", "3"]) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("argv", [["explore", "--theory-only"], ["dynamics", "--model", "anil", "--dim", "3"],
                                  ["in-context", "--dim", "2"]])
def test_threads_are_refused_where_nothing_uses_torch(argv, capsys):
    """explore --theory-only and the shallow/ANIL dynamics are numpy alone: --threads would be accepted and ignored."""
    assert paper_repro.main([*argv, "--threads", "3"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("paper_repro.py: error: argument --threads: "), err


def test_explore_theory_only_imports_neither_torch_nor_matplotlib():
    """The closed forms alone (issue 20): a fresh interpreter, the default setting, then sys.modules."""
    code = ("import contextlib, io, sys, paper_repro\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert paper_repro.main(['explore', '--theory-only', '--json']) == 0\n"
            "print(sorted(m for m in ('torch', 'matplotlib') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "[]", done.stdout + done.stderr


def test_formulas_out_writes_the_file(tmp_path, capsys):
    path = tmp_path / "formulas.md"
    assert paper_repro.main(["formulas", "--output", str(path)]) == 0
    assert capsys.readouterr().out == ""
    assert path.read_text().startswith("**") and "$$" in path.read_text()


# -- bad input: exit 2, one line naming the option and its valid range, nothing written -------------
def _tree(folder: Path) -> list[tuple[str, bool]]:
    return sorted((str(p.relative_to(folder)), p.is_dir()) for p in folder.rglob("*"))


@pytest.mark.parametrize(("argv", "flag", "valid"), BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_bad_input_exits_2_with_one_line(argv, flag, valid, tmp_path, capsys):
    """Every row of tests/bad_input.py: exit status 2, one line on stderr naming the option and its valid range,
    nothing on stdout, and nothing written: ``{tmp}`` (a file, an empty folder, a folder whose figure-6 checkpoint
    name is a folder) holds the same entries afterwards."""
    (tmp_path / "file").write_text("a regular file\n")
    (tmp_path / "dir").mkdir()
    (tmp_path / "pd" / ".fig6_phase_diagram.partial.json").mkdir(parents=True)
    before = _tree(tmp_path)
    assert paper_repro.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1 and err.endswith("\n"), f"not one line: {err!r}"
    assert err.startswith("paper_repro.py: error: "), err
    assert flag in err, f"{err!r} does not name {flag}"
    assert valid in err, f"{err!r} does not describe the valid range ({valid!r})"
    assert _tree(tmp_path) == before, "an output was left behind"


def test_the_bad_input_table_covers_every_subcommand():
    commands = {argv[0] if argv and argv[0] in paper_repro.COMMANDS else "figures" for argv, _, _ in BAD_INPUT}
    assert len(BAD_INPUT) >= 120 and commands >= set(TABLE_COMMANDS), sorted(commands)


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


def test_diverging_classification_names_the_step_used(capsys):
    """Classification's default step is 0.5, not α*, and no closed form bounds it: the advice says so."""
    argv = ["explore", "--task", "classification", "--alpha", "1000", "--steps", "6", "--models", "deep",
            "--iterations", "5", "--eval-tasks", "10", "--json"]
    assert paper_repro.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("paper_repro.py: error: argument --alpha: 1000 makes meta-training diverge"), err
    assert "no closed form" in err and "0.0893" not in err and err.count("\n") == 1, err


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
    mu, alpha = family.task_mean, shallow_maml.optimal_step_size(family)
    expected = {"pre_adaptation_loss": shallow_maml.pre_adaptation_loss(family, mu),
                "shallow_post_loss": shallow_maml.post_adaptation_loss(family, mu, alpha),
                "shallow_optimal_alpha": alpha,
                "shallow_best_post_loss": shallow_maml.best_post_adaptation_loss(family),
                "preconditioned_best_post_loss": preconditioned_maml.preconditioned_best_post_loss(family)}
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


def test_theory_only_for_any_spectra_scale_and_mean(capsys):
    """--task-var, --mean-norm, --task-spectrum and --input-spectrum build the family the closed forms see."""
    d = 6
    inputs, tasks = (0.5, 1.0, 1.5, 2.0, 2.5, 3.0), (0.0, 0.0, 0.3, 1.0, 2.0, 0.0)
    report = _explore_json(["--theory-only", "--dim", str(d), "--support", "4", "--noise", "0.1",
                            "--mean-norm", "2", "--task-spectrum", ",".join(map(str, tasks)),
                            "--input-spectrum", ",".join(map(str, inputs))], capsys)
    theory = report["theory"]
    family = LinearTaskFamily.from_covariances(d, 4, 20, task_cov=np.diag(tasks), input_cov=np.diag(inputs),
                                               noise_var=0.1)
    # θ* = μ: the losses do not depend on where μ is, so a family with μ = 0 gives the same numbers
    mu, alpha = family.task_mean, shallow_maml.optimal_step_size(family)
    pre = 0.5 * (np.dot(inputs, tasks) + 0.1)
    assert_close(theory["pre_adaptation_loss"], pre, IDENTITY_TOL, "½(tr ΣxΣw + s²)")
    assert_close(theory["shallow_optimal_alpha"], alpha, IDENTITY_TOL, "α*")
    best = shallow_maml.best_post_adaptation_loss(family)
    assert_close(theory["shallow_best_post_loss"], best, IDENTITY_TOL, "L*")
    assert_close(theory["preconditioned_best_post_loss"], preconditioned_maml.preconditioned_best_post_loss(family),
                 IDENTITY_TOL, "P*")
    assert_close(theory["shallow_post_loss"], shallow_maml.post_adaptation_loss(family, mu, alpha), IDENTITY_TOL, "L")
    scaled = _explore_json(["--theory-only", "--task-var", "0.5", "--rank", "3"], capsys)["theory"]
    assert_close(scaled["pre_adaptation_loss"], 0.5 * 3 * 0.5, IDENTITY_TOL, "½ rV")
    assert_close(scaled["preconditioned_best_post_loss"], 0.5 * 3 * 0.5 * 4 * 0.5 / (5 * 0.5 + 3 * 0.5 + 0.5),
                 IDENTITY_TOL, "½ rV·(r+1)V/(KV + rV + V) (Σw = V UUᵀ, s² = 0)")


def test_bayes_floor_in_the_theory_report(capsys):
    """Noiseless with K ≥ r the floor is exactly 0 (said, not divided by); rank 1 with noise is a quadrature."""
    theory = _explore_json(["--theory-only"], capsys)["theory"]
    assert theory["bayes_optimal_loss"] == 0.0 and theory["bayes_optimal_loss_method"] == "exact"
    assert "almost surely" in theory["notes"]["bayes_optimal_loss"]
    noisy = _explore_json(["--theory-only", "--dim", "6", "--support", "3", "--rank", "1", "--noise", "0.3"],
                          capsys)["theory"]
    family = LinearTaskFamily.subspace(6, 3, 20, rank=1, noise_var=0.3, seed=0)
    assert noisy["bayes_optimal_loss_method"] == "quadrature" and noisy["bayes_optimal_loss_ci95"] == 0.0
    assert_close(noisy["bayes_optimal_loss"], bayes_optimal_loss(family).value, IDENTITY_TOL, "Bayes floor")
    assert noisy["bayes_optimal_loss"] < noisy["preconditioned_best_post_loss"] < noisy["shallow_best_post_loss"]


@pytest.mark.parametrize("mean_norm", [0.0, 1.0])
def test_deep_theory_in_the_report_is_consistent(mean_norm, capsys):
    """ANIL's and depth-2 MAML's best at --width: Bayes floor ≤ depth-2 best ≤ pre-adaptation loss; at μ = 0 and
    h ≥ r both reach the optimal preconditioner (full MAML approaches ANIL's preconditioner with w2 → 0)."""
    argv = ["--theory-only", "--dim", "8", "--width", "3", "--noise", "0.1", "--mean-norm", str(mean_norm)]
    theory = _explore_json(argv, capsys)["theory"]
    assert theory["bayes_optimal_loss"] <= theory["depth2_best_post_loss"] <= theory["pre_adaptation_loss"]
    assert "numerical" in theory["notes"]["depth2_best_post_loss"]
    if mean_norm == 0:
        assert theory["depth2_best_post_loss"] <= theory["anil_best_post_loss"] + 1e-9
        assert_close(theory["anil_best_post_loss"], theory["preconditioned_best_post_loss"], 1e-9, "h ≥ r")
        assert "closed form" in theory["notes"]["anil_best_post_loss"]


def test_spectra_reach_the_simulation_too():
    """The same family object feeds the samplers: the sampled inputs have the given spectrum."""
    from simulations.experiments.explore import ExploreConfig
    from simulations.tasks import sample_regression_tasks

    config = ExploreConfig(dim=3, support=4, input_spectrum=(1.0, 4.0, 9.0), task_spectrum=(1.0, 0.0, 0.0),
                           mean_norm=1.0)
    batch = sample_regression_tasks(config.family(), 20_000, 0)
    x = batch.x_support.reshape(-1, 3)
    assert_close(np.diag(np.cov(x.numpy().T)), [1.0, 4.0, 9.0], 0.03, "sample variances of the inputs")
    assert abs(np.linalg.norm(config.family().task_mean) - 1.0) < 1e-12


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
    proc = _script("verify", "--output", str(path), "--scale", "0.3", "--json", timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr
    table = json.loads(path.read_text())
    assert json.loads(proc.stdout) == table  # --json: the same table on stdout, nothing else
    assert isinstance(table, list) and table
    for row in table:
        assert {"name", "theory", "simulation", "passed"} <= set(row), row
        assert isinstance(row["passed"], bool)
    failed = [row["name"] for row in table if not row["passed"]]
    assert proc.returncode == (1 if failed else 0), (proc.returncode, failed)
    assert not failed, f"at --scale 0.3 every closed form should meet its simulation twin: {failed}"
    # float64/sympy identities do not depend on the sample size: they pass at any scale
    assert all(row["passed"] for row in table if row["kind"] == "identity"), failed


def test_bench_json_prints_one_object_and_nothing_else():
    """`bench --json`: one JSON object on stdout (ratios measured in this run, the settings), nothing on stderr
    (the memory profiler's start/stop lines go to fd 2 and must be silenced). Tiny run: no timing claims."""
    proc = _script("bench", "--json", "--iterations", "1", "--meta-batch", "2", "--threads", "1",
                   "--kfo-forms", "linear,psd", timeout=300)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    report = json.loads(proc.stdout)
    assert set(report) == {"maml", "kfo", "runs", "config"}
    assert report["runs"]["stacked_speedup"] > 0 and report["runs"]["iterations"] == 1
    maml = report["maml"]
    for key in ("batched_speedup", "low_rank_speedup", "closed_form_speedup"):
        assert math.isfinite(maml[key]) and maml[key] > 0, key
    assert maml["gradients_agree"] is True
    assert set(report["kfo"]) == {"linear", "psd"}
    for ratios in report["kfo"].values():
        assert set(ratios) == {"time_ratio", "memory_ratio", "closed_form"}
        for pair in (ratios, ratios["closed_form"]):
            assert pair["time_ratio"] > 0 and pair["memory_ratio"] > 0
    config = report["config"]
    assert (config["meta_batch"], config["threads"], config["iterations"]) == (2, 1, 1)
    assert config["at_goal_settings"] is False


def test_json_output_is_strict(capsys):
    """`explore --support inf --theory-only --json` once printed `"support": Infinity`, which strict parsers reject."""
    assert paper_repro.main(["explore", "--support", "inf", "--theory-only", "--json"]) == 0
    report = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert report["config"]["support"] == "inf"
    assert paper_repro.strict_json({"a": [math.inf, -math.inf, math.nan, 1.5]}) == {"a": ["inf", "-inf", None, 1.5]}


def test_verify_text_table_ends_with_the_counts():
    from simulations.checks import Check, format_checks

    checks = [Check("a.x", "s", 1.0, 1.0, "rule", True, "identity", 0.0),
              Check("a.y", "s", 1.0, 2.0, "rule", False, "interval", 3.0)]
    assert format_checks(checks).splitlines()[-1] == "1 passed, 1 failed"


def test_an_option_given_once_per_element_may_repeat():
    """--group is the one option given once per element; repeating it is how several groups are given."""
    command, config, _ = paper_repro.parse(["fixed-points", "--group", "prob=0.5,input-var=1,task-mean=1",
                                            "--group", "prob=0.5,input-var=2,task-mean=0"])
    assert command == "fixed-points" and len(config.groups) == 2


def test_output_paths_are_checked_without_being_created(tmp_path):
    """Checking `--out a/b/c` (a folder the run would create) and `--output x/y.md` creates nothing: the probe file
    in the nearest existing folder is removed at once."""
    assert paper_repro.parse(["--only", "6", "--out", str(tmp_path / "a" / "b" / "c")])[1].out.endswith("c")
    assert paper_repro.parse(["formulas", "--output", str(tmp_path / "x" / "y.md")])[1].output.endswith("y.md")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_zero_task_variance_is_exact(noise, capsys):
    """--task-spectrum 0,0,0 (every task is μ) once raised LinAlgError: no step lowers the loss, so α* = 0 and every
    loss, of every model and the Bayes floor, is the pre-adaptation loss ½s²."""
    theory = _explore_json(["--theory-only", "--dim", "3", "--task-spectrum", "0,0,0", "--noise", str(noise)],
                           capsys)["theory"]
    assert theory["shallow_optimal_alpha"] == 0.0 and theory["alpha"] == 0.0
    for key in ("pre_adaptation_loss", "shallow_post_loss", "shallow_best_post_loss", "preconditioned_best_post_loss",
                "anil_best_post_loss", "depth2_best_post_loss", "bayes_optimal_loss"):
        assert_close(theory[key], noise / 2, IDENTITY_TOL, key)
    assert "Σw = 0" in theory["notes"]["anil_best_post_loss"]


# -- explore reads Σw and Σx from files --------------------------------------------------------------
def _covariance_file(path, matrix, text: bool = False):
    if text:
        np.savetxt(path, matrix)
    else:
        np.save(path, matrix)
    return str(path)


def test_explore_reads_covariances_from_files_and_reports_meta_sgd(tmp_path, capsys):
    rng = np.random.default_rng(0)
    spectrum = np.array([1.0, 1.0, 0.5, 0.2, 0, 0, 0, 0])
    u = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    rotated = _covariance_file(tmp_path / "rot.npy", u @ np.diag(spectrum) @ u.T)
    diagonal = _covariance_file(tmp_path / "diag.txt", np.diag(spectrum), text=True)
    inputs = _covariance_file(tmp_path / "x.txt", np.diag(np.linspace(0.5, 2, 8)), text=True)
    theory = {}
    for name, path in (("rotated", rotated), ("diagonal", diagonal)):
        assert paper_repro.main(["explore", "--dim", "8", "--support", "4", "--task-cov", path, "--theory-only",
                                 "--width", "2", "--json"]) == 0
        theory[name] = json.loads(capsys.readouterr().out)["theory"]
    rot, diag = theory["rotated"], theory["diagonal"]
    assert rot["preconditioned_best_post_loss"] < rot["meta_sgd_best_post_loss"] < rot["shallow_best_post_loss"]
    assert diag["meta_sgd_best_post_loss"] == pytest.approx(diag["preconditioned_best_post_loss"], rel=1e-10)
    family = LinearTaskFamily.from_covariances(8, 4, 20, task_cov=np.diag(spectrum), input_cov=np.diag(
        np.linspace(0.5, 2, 8)))
    assert paper_repro.main(["explore", "--dim", "8", "--support", "4", "--task-cov", diagonal, "--input-cov", inputs,
                             "--theory-only", "--width", "2", "--json"]) == 0
    from theory.preconditioned_maml import preconditioned_best_post_loss

    got = json.loads(capsys.readouterr().out)["theory"]["preconditioned_best_post_loss"]
    assert got == pytest.approx(preconditioned_best_post_loss(family), rel=1e-12)


@pytest.mark.parametrize(("content", "option", "words"), [
    (np.triu(np.ones((4, 4))), "--task-cov", "a symmetric matrix"),
    (np.diag([1.0, -1, 0, 0]), "--task-cov", "positive semi-definite"),
    (np.eye(3), "--task-cov", "d = 4 (the file holds shape (3, 3))"),
    (np.diag([1.0, np.nan, 1, 1]), "--task-cov", "finite entries"),
    ("a b\nc d\n", "--task-cov", "a file of numbers"),
    (None, "--task-cov", "a readable file"),
    (np.diag([1.0, 0, 1, 1]), "--input-cov", "positive definite"),
])
def test_bad_covariance_files_are_one_line(tmp_path, capsys, content, option, words):
    path = tmp_path / "cov.txt"
    if isinstance(content, str):
        path.write_text(content)
    elif content is not None:
        np.savetxt(path, content)
    assert paper_repro.main(["explore", "--dim", "4", option, str(path), "--theory-only"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and option in err and words in err, err


def test_a_covariance_file_excludes_the_options_it_replaces(tmp_path, capsys):
    path = _covariance_file(tmp_path / "c.npy", np.eye(4))
    for extra, flag in ((["--rank", "2"], "--rank"), (["--task-spectrum", "1,1,1,1"], "--task-spectrum")):
        assert paper_repro.main(["explore", "--dim", "4", "--task-cov", path, *extra, "--theory-only"]) == 2
        assert flag in capsys.readouterr().err
    assert paper_repro.main(["explore", "--dim", "4", "--input-cov", path, "--input-spectrum", "1,1,1,1",
                             "--theory-only"]) == 2
    assert "--input-spectrum" in capsys.readouterr().err
