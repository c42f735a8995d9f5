"""Smoke test of the figure registry (STYLE item 10): every figure with a tiny profile into a
temporary folder; its JSON, CSV, PDF and PNG exist, the numbers are finite, --replot needs no
recomputation, the same seed gives the same CSV bytes, the progress bar counts the units that run,
the theory levels are drawn one way, and one claim of the theory holds per figure.
"""
from __future__ import annotations

import csv
import dataclasses
import importlib
import inspect
import io
import json
import math
import pkgutil
import re
import shutil

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.colors import to_hex

import paper_repro
import simulations.checks
from figures import (
    fig1_failure_mode,
    fig2_loss_surface,
    fig3_depth_width,
    fig4_theory_vs_simulation,
    fig5_remedies,
    fig6_phase_diagram,
    fig7_vision,
    fig8_many_steps,
    fig9_beyond_identical_tasks,
    fig10_dynamics,
    fig11_adaptation_rules,
)
from figures.checkpoint import UnitCheckpoint
from figures.common import REFERENCE_LINEWIDTH, REFERENCE_STYLE
from figures.registry import FIGURES, compute, run_figure
from tests.helpers import assert_close
from theory.ground.errors import DivergenceError
from theory.shallow_maml import REFERENCE_LOSSES

TINY = {  # figure -> (module, its tiny profile); each figure takes a few seconds at most
    1: (fig1_failure_mode, fig1_failure_mode.Config(dim=10, iterations=20, eval_every=10, eval_tasks=50,
                                                    seeds=2)),
    2: (fig2_loss_surface, fig2_loss_surface.Config(iterations=20, meta_batch=16, record_every=5, grid=31)),
    3: (fig3_depth_width, fig3_depth_width.Config(dim=8, depths=(1, 2), widths=(1, 4), dims=(5, 10),
                                                  anil_widths=(1,), gap_widths=(1,), restarts=0,
                                                  iterations=20, eval_tasks=200, seeds=2)),
    4: (fig4_theory_vs_simulation, fig4_theory_vs_simulation.Config(scale=0.02)),
    5: (fig5_remedies, fig5_remedies.Config(dim=8, iterations=15, eval_tasks=100, seeds=2)),
    6: (fig6_phase_diagram, fig6_phase_diagram.Config(n_ratio=8, n_rank=6)),
    7: (fig7_vision, fig7_vision.Config(datasets=("digits", "omniglot"), iterations=3, meta_batch=2,
                                        eval_tasks=10, width=4, seeds=2)),
    8: (fig8_many_steps, fig8_many_steps.Config(dims=(3, 10), k_max=6, ratios=(0.6, 1.2), sim_steps=(1, 2),
                                                iterations=10, eval_tasks=50, seeds=2)),
    9: (fig9_beyond_identical_tasks, fig9_beyond_identical_tasks.Config(runs=40, k_max=3, sim_steps=(1,), sim_runs=2,
                                                                      sim_iterations=20)),
    10: (fig10_dynamics, fig10_dynamics.Config(anil_last=40.0, anil_eta=1.0, shallow_last=0.5, shallow_eta=0.1,
                                               sgd_seeds=2, sgd_batch=50, eval_tasks=50, depth2_dim=4,
                                               depth2_widths=(1, 2), depth2_scales=(0.3, 1.0), depth2_starts=2,
                                               depth2_horizon=20.0)),
    11: (fig11_adaptation_rules, fig11_adaptation_rules.Config(dims=(3, 6), ridge_draws=500, floor_draws=2000,
                                                               sim_dims=(3,),
                                                               sim_iterations=10, sim_seeds=2, eval_tasks=50,
                                                               icl_dim=2, icl_context=4, icl_tests=(2, 4),
                                                               icl_iterations=10, icl_seeds=2, icl_eval=50)),
}
SUFFIXES = (".json", ".csv", ".pdf", ".png")


def test_every_registered_figure_has_a_tiny_profile():
    assert set(TINY) == set(FIGURES)


def _tiny_profiles(mp: pytest.MonkeyPatch) -> None:
    for module, config in TINY.values():
        mp.setattr(module.Config, "quick", classmethod(lambda cls, c=config: c))


def _count_progress(mp: pytest.MonkeyPatch, progress: dict) -> None:
    """Record, per figure, the progress bar's total and the units that ticked it: {number: [total, ticks]}."""
    real_init, real_run, real_update = UnitCheckpoint.__init__, UnitCheckpoint.run, UnitCheckpoint.update

    def init(self, path, signature, bar=None):
        real_init(self, path, signature, bar)
        progress[signature["figure"]] = [None if bar is None else bar.total, 0]

    def run(self, key, compute):
        progress[self.signature["figure"]][1] += 1
        return real_run(self, key, compute)

    def update(self, n=1):
        progress[self.signature["figure"]][1] += n
        real_update(self, n)

    mp.setattr(UnitCheckpoint, "__init__", init)
    mp.setattr(UnitCheckpoint, "run", run)
    mp.setattr(UnitCheckpoint, "update", update)


def _run_all(out, seed: int = 0, numbers=tuple(TINY), progress: dict | None = None) -> dict:
    with pytest.MonkeyPatch.context() as mp:
        _tiny_profiles(mp)
        if progress is not None:
            _count_progress(mp, progress)
        return {n: run_figure(n, out=str(out), seed=seed) for n in numbers}


@pytest.fixture(scope="module")
def progress() -> dict:
    """Filled by ``built``: {number: [the progress bar's total, the units that ticked it]}."""
    return {}


@pytest.fixture(scope="module")
def built(tmp_path_factory, progress):
    """Every figure, tiny profile, seed 0: {number: [json, csv, pdf, png]}."""
    return _run_all(tmp_path_factory.mktemp("figures"), progress=progress)


def _record(paths) -> dict:
    return json.loads(paths[0].read_text())


def _csv_rows(path) -> list[dict]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def _as_float(text: str):
    try:
        return float(text)
    except ValueError:
        return None  # a label (panel, model, setting, rule), not a number


# -- files, finiteness, the record ---------------------------------------------------------------
@pytest.mark.parametrize("number", sorted(TINY))
def test_outputs_exist_and_are_non_empty(built, number):
    paths = built[number]
    assert [p.suffix for p in paths] == list(SUFFIXES)
    name = FIGURES[number][0]
    for path in paths:
        assert path.name == f"fig{number}_{name}{path.suffix}"
        assert path.is_file() and path.stat().st_size > 0, path
    assert paths[2].read_bytes().startswith(b"%PDF")
    assert paths[3].read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("number", sorted(TINY))
def test_csv_numbers_are_finite(built, number):
    rows = _csv_rows(built[number][1])
    assert rows
    numbers = 0
    for row in rows:
        for key, text in row.items():
            value = _as_float(text)
            if value is None:
                continue
            numbers += 1
            assert math.isfinite(value), f"figure {number}: {key} = {text!r} in {row}"
    assert numbers > 0


@pytest.mark.parametrize("number", sorted(TINY))
def test_json_record(built, number):
    record = _record(built[number])
    assert {"config", "seed", "provenance", "results", "caption"} <= set(record)
    assert record["figure"] == number and record["seed"] == 0 and record["profile"] == "quick"
    config = TINY[number][1]
    assert record["config"] == json.loads(json.dumps(dataclasses.asdict(config)))  # the tiny profile was used
    assert {"python", "torch", "numpy", "matplotlib", "requirements_lock", "torch_cpu_capability", "numpy_simd",
            "code"} <= set(record["provenance"])
    assert isinstance(record["caption"], str) and record["caption"]


# -- the progress bar --------------------------------------------------------------------------------
# units each tiny profile runs, counted from its grids here (not from the figure's n_units)
TINY_UNITS = {
    1: 7,  # 4 regression models + 3 classification models (each with its seeds)
    2: 2,  # the shallow and the depth-2 SGD path
    3: (2 + 2 + 1 + 1 + 2 * 2) + 1,  # settings (each with its seeds): depths + widths + ANIL + small head + dims
    # × (shallow, deep), none shared (see test_fig3_…), + the depth-2 optimum at the one gap width
    4: len(simulations.checks.CHECKS),  # one verify check per unit
    5: 2 * 2 * 3,  # task × base × remedy (each with its seeds)
    6: 1,  # one closed-form grid
    7: 1 * 2 * 2 * 3 * 2,  # digits only (omniglot is absent) × method × depth × remedy × seeds
    8: 2 * (1 + 2 * 2) + 2,  # dims × (theory + sim steps × seeds) + the d/K points of panel (b)
    9: 1 + 4 * 1 * 2,  # panel (a) + algorithms × sim steps × supports (∞, 5)
    10: 1 + 2 + 2,  # ANIL, shallow MAML and joint training, one depth-2 unit per width
    11: 2 + 2 * 1 * 2 + 1 + 2,  # the rules per d, Meta-SGD and iMAML runs (d × seeds), the attention theory, its runs
}


@pytest.mark.parametrize("number", sorted(TINY))
def test_progress_total_is_the_units_that_run(built, progress, number):
    total, ticks = progress[number]
    assert total == ticks, f"figure {number}: the progress bar expects {total} units, {ticks} ran"
    if number in TINY_UNITS:
        assert ticks == TINY_UNITS[number], f"figure {number}"


# -- the theory levels: one label, line style and colour each, in every figure that draws them --------
LEVELS_DRAWN = {1: (0, REFERENCE_LOSSES), 2: (0, ("shallow_best_post_loss",)), 3: (0, REFERENCE_LOSSES),
                5: (0, REFERENCE_LOSSES)}  # figure -> (axis, levels drawn there as horizontal lines)


def test_reference_styles_are_distinct():
    assert tuple(REFERENCE_STYLE) == REFERENCE_LOSSES
    for field in ("label", "color", "linestyle"):
        assert len({style[field] for style in REFERENCE_STYLE.values()}) == len(REFERENCE_LOSSES), field


@pytest.mark.parametrize("number", sorted(LEVELS_DRAWN))
def test_reference_levels_are_drawn_one_way(built, number):
    results = _record(built[number])["results"]
    theory = results["theory"]
    if number == 3:
        theory = next(t for t in theory if t["dim"] == results["main_dim"])
    elif number == 2:
        theory = {"shallow_best_post_loss": theory["shallow_best_post_loss"]}
    fig = TINY[number][0].plot(results)
    try:
        by_label = {style["label"]: key for key, style in REFERENCE_STYLE.items()}
        by_label |= {f"{style['label']}: {theory[key]:.3f}": key for key, style in REFERENCE_STYLE.items()
                     if key in theory}  # draw_reference_losses(..., with_values=True)
        for i, ax in enumerate(fig.axes):
            for line in ax.get_lines():
                key = by_label.get(line.get_label())
                if key is None:
                    continue
                style = REFERENCE_STYLE[key]
                assert (to_hex(line.get_color()), line.get_linestyle(), line.get_linewidth()) == (
                    style["color"], style["linestyle"], REFERENCE_LINEWIDTH), f"figure {number}, axis {i}: {key}"
        axis, keys = LEVELS_DRAWN[number]
        drawn = {by_label[line.get_label()]: line.get_ydata() for line in fig.axes[axis].get_lines()
                 if line.get_label() in by_label}
        assert set(drawn) == set(keys), f"figure {number}"
        for key in keys:
            assert_close(np.asarray(drawn[key], float), np.full(2, theory[key]), 1e-12, f"figure {number}: {key}")
    finally:
        plt.close(fig)


# -- --replot: from the cached JSON alone ---------------------------------------------------------
@pytest.mark.parametrize("number", sorted(TINY))
def test_replot_uses_the_cache(built, number, tmp_path, monkeypatch):
    module = TINY[number][0]
    cached = tmp_path / built[number][0].name
    shutil.copy(built[number][0], cached)  # the JSON only: no CSV, PDF or PNG here

    def no_compute(*args, **kwargs):
        raise AssertionError("--replot recomputed the figure")

    monkeypatch.setattr(module.EXPERIMENT, "units", no_compute)
    monkeypatch.setattr(module.EXPERIMENT, "assemble", no_compute)
    paths = run_figure(number, out=str(tmp_path), seed=0, replot=True)
    pdf, png = paths[2], paths[3]
    assert png.parent == tmp_path and png.stat().st_size > 0 and png.read_bytes().startswith(b"\x89PNG")
    assert pdf.stat().st_size > 0
    assert cached.read_bytes() == built[number][0].read_bytes()  # the cache is left as it was


def test_replot_without_cache_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="run without --replot first"):
        run_figure(6, out=str(tmp_path), replot=True)


# -- determinism --------------------------------------------------------------------------------
@pytest.mark.parametrize("number", [6, 1, 2, 3, 5, 7])
def test_same_seed_same_csv_bytes(built, number, tmp_path):
    again = _run_all(tmp_path, seed=0, numbers=(number,))[number]
    assert again[1].read_bytes() == built[number][1].read_bytes()


def test_fig5_remedies_help_the_shallow_model(built):
    """Regression: + linear layers and + KFO lower the shallow model's post-adaptation loss."""
    stats = fig5_remedies.summary(_record(built[5])["results"])
    plain = stats[("regression", "shallow", "plain")]["post_loss"][0]
    for remedy in ("+ linear layers", "+ KFO"):
        assert stats[("regression", "shallow", remedy)]["post_loss"][0] < plain, remedy


# -- one claim of the theory per figure -----------------------------------------------------------
def test_fig1_remedies_adapt_below_pre_adaptation_loss(built):
    results = _record(built[1])["results"]
    theory = results["theory"]
    # d=10, K=5, r=2, Σx = I, s² = 0: L_pre = r/2, best shallow = L_pre (d+1)/(K+d+1), P* = ½ r(r+1)/(K+r+1)
    assert_close(theory["pre_adaptation_loss"], 1.0, 1e-12, "pre-adaptation loss")
    assert_close(theory["shallow_best_post_loss"], 11 / 16, 1e-12, "best shallow step")
    assert_close(theory["preconditioned_best_post_loss"], 0.375, 1e-12, "optimal preconditioner")
    final = {}
    for run in results["runs"]:
        if run["panel"] == "regression":
            assert run["iteration"][-1] == TINY[1][1].iterations
            final.setdefault(run["model"], []).append(run["post_loss"][-1])
    assert set(final) == {"shallow", "deep", "linnet", "kfo"}
    for model in ("deep", "linnet", "kfo"):
        mean = float(np.mean(final[model]))
        assert mean < theory["pre_adaptation_loss"], f"{model}: final post-adaptation loss {mean:.4f}"


def test_fig1_records_the_seeds_it_used(monkeypatch):
    """Each run's recorded seed is the one its model was built and meta-trained with."""
    used = []
    experiment = fig1_failure_mode.EXPERIMENT
    real_build, real_train = experiment.build_model, experiment.meta_train_runs

    def build(name, spec, seed):
        used.append(("build", seed))
        return real_build(name, spec, seed=seed)

    def train(models, sampler, inner, iterations, seeds, *args, **kwargs):
        used.extend(("train", seed) for seed in seeds)
        return real_train(models, sampler, inner, iterations, seeds, *args, **kwargs)

    monkeypatch.setattr(experiment, "build_model", build)
    monkeypatch.setattr(experiment, "meta_train_runs", train)
    config = fig1_failure_mode.Config(dim=4, iterations=1, eval_every=1, eval_tasks=4, seeds=2)
    runs = compute(fig1_failure_mode, config, seed=3)["runs"]
    assert len(runs) == 7 * config.seeds
    settings = [runs[i:i + config.seeds] for i in range(0, len(runs), config.seeds)]  # a setting's seeds at once
    assert used == [(step, r["seed"]) for group in settings for step in ("build", "train") for r in group]
    assert {r["seed"] for r in runs} == {3, 103}  # seed + 100 s for s = 0, 1


def test_fig2_depth_two_learns_its_step_size(built):
    results = _record(built[2])["results"]
    t, deep, shallow = results["theory"], results["deep"], results["shallow"]
    # d = 1, K = 5, σ² = 1, s² = 0: α* = K/(K + 2), best shallow loss ½σ²(1 − α*), pre-adaptation ½σ² at w = μ
    assert_close(t["shallow_alpha_star"], 5 / 7, 1e-12, "α*")
    assert_close(t["shallow_best_post_loss"], 1 / 7, 1e-12, "best shallow loss")
    assert_close(t["pre_adaptation_loss_at_mu"], 0.5, 1e-12, "pre-adaptation loss")
    # at α = 0.2 < α*/2 the layers raise their effective step: below the shallow model at the same α
    assert t["shallow_best_post_loss"] <= t["deep_min_loss"] < t["shallow_post_loss_at_mu"]
    assert np.min(deep["surface"]) >= t["deep_min_loss"] - 1e-9
    assert len(deep["arrows"]) == TINY[2][1].n_tasks_shown
    assert deep["path"][-1]["iteration"] == shallow["path"][-1]["iteration"] == TINY[2][1].iterations
    for path in (deep["path"], shallow["path"]):
        assert path[-1]["loss"] < path[0]["loss"]


def test_fig3_theory_and_shared_runs(built):
    results = _record(built[3])["results"]
    config = TINY[3][1]
    # in the tiny profile only the gap panel shares runs (with the width panel): d = 8 is not in dims, width 16
    # not in widths
    assert config.dim not in config.dims and config.width not in config.widths
    assert set(config.gap_widths) <= set(config.widths)
    settings = (len(config.depths) + len(config.widths) + len(config.anil_widths) + len(config.gap_widths)
                + 2 * len(config.dims))  # ANIL, small-head runs; panel (c): shallow and deep
    assert len(results["runs"]) == settings * config.seeds == 20
    keys = {(r["dim"], r["depth"], r["width"], r["variant"], r["seed"]) for r in results["runs"]}
    assert len(keys) == len(results["runs"])
    k, r = config.support, config.rank
    for t in results["theory"]:  # Σx = I, Σw = UUᵀ (rank r), s² = 0
        d = t["dim"]
        assert_close(t["pre_adaptation_loss"], r / 2, 1e-12, "pre-adaptation")
        assert_close(t["shallow_best_post_loss"], r / 2 * (d + 1) / (k + d + 1), 1e-12, "best shallow step")
        assert_close(t["preconditioned_best_post_loss"], r * (r + 1) / (2 * (k + r + 1)), 1e-12, "P*")
    points = fig3_depth_width.summarize(results)
    shallow = [p for p in points if p["depth"] == 1]
    assert shallow and all(p["closed_form_at_trained"] is not None for p in shallow)  # depth 1 = shallow
    same = [p for p in points if (p["dim"], p["depth"], p["width"]) == (config.dim, 1, 1)]
    shared = {"ratio:shallow"} if config.dim in config.dims else set()
    assert {p["panel"] for p in same} == {"depth"} | shared
    assert all(p["seeds"] == config.seeds and p["diverged"] == 0 for p in points)
    for run in results["runs"]:  # every trained model is held against the closed form at its own weights
        exact = run["depth"] in (1, 2) or run["variant"] == "anil"
        assert (run["closed_form_at_trained"] is not None) == exact, run
        assert (run["surrogate_at_trained"] is not None) == (run["depth"] > 1 and run["variant"] != "anil"), run
    anil = {a["width"]: a["anil_best_post_loss"] for a in results["anil_best"]}
    main = next(t for t in results["theory"] if t["dim"] == config.dim)
    for width, value in anil.items():  # the rank-h optimum is the any-P optimum once h ≥ r
        assert value >= main["preconditioned_best_post_loss"] - 1e-12
        if width >= r:
            assert_close(value, main["preconditioned_best_post_loss"], 1e-9, f"ANIL's best at width {width}")
    for b in results["depth2_best"]:  # at μ = 0 full MAML can approach ANIL's preconditioner with v → 0
        assert b["depth2_best_post_loss"] <= anil[b["width"]] + 1e-9 <= main["pre_adaptation_loss"]


def test_fig4_identities_and_bound_hold(built):
    """Sample-size-free checks pass at any scale: float64/sympy identities, and deep beats best shallow."""
    checks = _record(built[4])["results"]["checks"]
    assert [c["name"] for c in checks] == [c.name for c in simulations.checks.CHECKS]
    assert _check_functions() == _declared_functions()  # every check_* function of simulations.checks is declared
    assert len({c["name"] for c in checks}) == len(checks)
    for c in checks:
        assert math.isfinite(c["theory"]) and math.isfinite(c["simulation"]) and math.isfinite(c["score"])
        score, passed = _score_from_the_rule(c)
        assert_close(c["score"], score, 0.06, f"{c['name']}: score")  # the rule's numbers are rounded in text
        if abs(score - 1) > 0.06:
            assert c["passed"] == passed, c
        if c["kind"] in ("identity", "bound"):
            assert c["passed"], c


def _check_functions() -> set[str]:
    """Every function named check_* defined in the simulations.checks package (any of its modules)."""
    package = simulations.checks
    modules = [package] + [importlib.import_module(info.name)
                           for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")]
    return {f"{module.__name__}.{name}" for module in modules for name, f in vars(module).items()
            if name.startswith("check_") and inspect.isfunction(f) and f.__module__ == module.__name__}


def _declared_functions() -> set[str]:
    """The functions behind the declared checks (a partial's function counted by its own name only if check_*)."""
    computes = [getattr(c.compute, "func", c.compute) for c in simulations.checks.CHECKS]
    return {f"{f.__module__}.{f.__name__}" for f in computes if f.__name__.startswith("check_")}


def _score_from_the_rule(c: dict) -> tuple[float, bool]:
    """(deviation / allowed deviation, passed) recomputed from the theory and simulation values and the
    numbers written in the check's tolerance rule."""
    theory, simulation, rule = c["theory"], c["simulation"], c["tolerance"]
    if c["kind"] == "interval":  # "±margin (3.29 se, n=…)"
        margin = float(re.match(r"±(\S+) \(", rule).group(1))
        return abs(theory - simulation) / margin, abs(theory - simulation) <= margin
    if c["kind"] == "bound":  # "deep mean + 3.29 se = upper < shallow best"
        upper = float(re.search(r"= (\S+) <", rule).group(1))
        return upper / theory, upper < theory
    if rule.endswith("must be 0"):  # symbolic identity: the simulation is the count of nonzero entries
        return simulation, simulation == 0
    allowed = float(re.search(r"≤ (\S+)$", rule).group(1))
    if c["kind"] == "identity":  # "max rel. residual r ≤ tol"
        residual = float(re.search(r"residual (\S+) ≤", rule).group(1))
        return residual / allowed, residual <= allowed
    deviation = abs(simulation) if theory == 0 else abs(simulation - theory) / abs(theory)  # optimum
    return deviation / allowed, deviation <= allowed


def test_fig6_phase_diagram_claims(built):
    results = _record(built[6])["results"]
    d_over_k, r_over_d = np.array(results["d_over_k"]), np.array(results["r_over_d"])
    ratio, gain = np.array(results["shallow_ratio"]), np.array(results["gain"])
    assert ratio.shape == gain.shape == (len(r_over_d), len(d_over_k)) == (6, 8)
    assert np.all(ratio < 1), "the best shallow step always lowers the loss"
    assert np.all(np.diff(ratio, axis=1) > 0), "and lowers it less as d/K grows"
    assert np.all(gain >= 1 - 1e-12), "the optimal preconditioner never does worse than a scalar step"
    d, k = d_over_k * results["support"], results["support"]
    # s² = 0: best/pre = (d+1)/(K+d+1), whatever r (shallow_maml module doc)
    assert_close(ratio, np.broadcast_to((d + 1) / (k + d + 1), ratio.shape), 1e-12, "shallow ratio")
    assert_close(gain[-1], np.ones(len(d_over_k)), 1e-12, "gain at r = d")  # P* = scalar step when r = d


# -- the command line's figure path -----------------------------------------------------------------
def test_paper_repro_only_6(tmp_path, capsys):
    assert paper_repro.main(["--only", "6", "--out", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("figure 6: ") and "Traceback" not in err
    for suffix in SUFFIXES:
        path = tmp_path / f"fig6_phase_diagram{suffix}"
        assert path.is_file() and path.stat().st_size > 0, path


def test_interrupted_figure_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    """Units finished before an interruption are not recomputed; the result equals an uninterrupted run."""
    import figures.fig5_remedies as fig5

    config = TINY[5][1]
    monkeypatch.setattr(fig5.Config, "quick", classmethod(lambda cls: config))
    straight = run_figure(5, out=tmp_path / "straight", seed=0)
    calls, real_run = [], fig5.EXPERIMENT._run

    def interrupted(*args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(fig5.EXPERIMENT, "_run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_figure(5, out=tmp_path / "resumed", seed=0)
    assert list((tmp_path / "resumed").glob(".fig5_*.partial.json")), "no checkpoint after the interruption"
    resumed_calls = []

    def counting(*args, **kwargs):
        resumed_calls.append(1)
        return real_run(*args, **kwargs)

    monkeypatch.setattr(fig5.EXPERIMENT, "_run", counting)
    resumed = run_figure(5, out=tmp_path / "resumed", seed=0)
    assert len(resumed_calls) == len(fig5.EXPERIMENT.units(config, 0)) - 3
    assert straight[1].read_bytes() == resumed[1].read_bytes()  # same CSV
    assert not list((tmp_path / "resumed").glob(".fig5_*.partial.json"))


def test_fig7_runs_digits_and_reports_missing_data(built, progress):
    results = _record(built[7])["results"]
    assert {r["dataset"] for r in results["runs"]} == {"digits"}
    assert len(results["runs"]) == 2 * 2 * 3  # method × depth × remedy, digits only
    assert len(fig7_vision.EXPERIMENT.units(TINY[7][1], 0)) == 2 * len(results["runs"]) == progress[7][0]  # × 2 seeds
    assert "omniglot" in results["unavailable"] and "omniglot" in results["unavailable"]["omniglot"]
    for run in results["runs"]:
        accuracies = [p["test_accuracy"] for p in run["per_seed"]]
        assert [p["seed"] for p in run["per_seed"]] == [0, 100] and run["seeds"] == 2
        assert run["test_accuracy"] == pytest.approx(np.mean(accuracies), abs=1e-15)
        # the Student-t interval over the 2 seeds: t_{0.975, 1} · s / √2 = 12.706 · |a − b| / 2
        assert run["ci95"] == pytest.approx(12.7062047 * abs(accuracies[0] - accuracies[1]) / 2, rel=1e-6)


def test_fig7_paired_differences_are_bonferroni_intervals():
    """Each remedy against plain, paired by seed; the family of m comparisons at 95% (each at 1 − 0.05/m)."""
    def setting(method, remedy, accuracies):
        return {"dataset": "digits", "method": method, "depth": "2-block", "remedy": remedy,
                "per_seed": [{"seed": s, "test_accuracy": a} for s, a in zip((0, 100, 200), accuracies)]}

    runs = [setting("maml", "plain", (0.40, 0.42, 0.41)), setting("maml", "LinNet", (0.60, 0.63, 0.61)),
            setting("maml", "KFO", (0.40, 0.47, 0.38))]
    diffs = fig7_vision.paired_differences({"runs": runs})
    assert [(d["remedy"], d["level"]) for d in diffs] == [("LinNet", 0.975), ("KFO", 0.975)]
    linnet = np.array([0.20, 0.21, 0.20])  # per-seed differences
    # each of the 2 comparisons two-sided at 97.5%: the quantile t_{0.9875, 2} = 6.2053 (t_{0.975, 2} = 4.3027)
    assert diffs[0]["difference"] == pytest.approx(linnet.mean(), rel=1e-12)
    assert diffs[0]["interval"] == pytest.approx(6.205346816 * linnet.std(ddof=1) / np.sqrt(3), rel=1e-8)
    assert diffs[0]["resolved"] and not diffs[1]["resolved"]


# -- figure 3: divergence is a missing point (moved here from tests/test_fig2_fig3.py) -----------------
def test_fig3_reports_divergence_as_a_missing_point(monkeypatch):
    real = fig3_depth_width.EXPERIMENT.meta_train_runs

    def diverge_at_depth_2(models, *args, **kwargs):
        if len(models[0].layers) == 2:
            return [DivergenceError(7, float("nan")) for _ in models]
        return real(models, *args, **kwargs)

    monkeypatch.setattr(fig3_depth_width.EXPERIMENT, "meta_train_runs", diverge_at_depth_2)
    config = fig3_depth_width.Config(dim=6, dims=(6,), depths=(1, 2), widths=(4,), iterations=5, eval_tasks=50,
                                     seeds=2)
    results = compute(fig3_depth_width, config)
    points = fig3_depth_width.summarize(results)
    missing = [p for p in points if p["depth"] == 2]
    assert missing and all(p["post_loss"] is None and p["diverged"] == 2 for p in missing)
    assert all("diverged" in p["note"] and "meta-iteration 7" in p["note"] for p in missing)
    assert all(p["post_loss"] is not None for p in points if p["depth"] == 1)
    csv_rows = fig3_depth_width.rows(results)
    assert all(r["post_loss"] == "" for r in csv_rows if r["panel"] != "theory" and r["depth"] == 2)
    assert "diverged" in fig3_depth_width.caption(results)
    plt.close(fig3_depth_width.plot(results))


def test_fig8_plain_steps_against_one_preconditioned_step(built):
    """Below d = K a few plain steps match one optimally preconditioned step; above it none do (here), and
    every curve lies between the pre-adaptation loss and the Bayes floor, falling with k."""
    results = _record(built[8])["results"]
    for t in results["theory"]:
        curve = np.array(t["best_k_step"])
        assert np.all(np.diff(curve) <= 1e-12), "more plain steps (each at its own α*) never hurt"
        assert t["bayes_optimal_loss"] < curve.min() and curve.max() < t["pre_adaptation_loss"]
        assert t["bayes_optimal_loss"] < t["preconditioned_best_post_loss"]
    by_ratio = {r["d_over_k"]: r["steps_to_match"] for r in results["ratio_steps"]}
    assert by_ratio[0.6] == 2 and by_ratio[1.2] is None
    assert [t["steps_to_match"] for t in results["theory"]] == [2, None]  # d = 3 and 10 at K = 5
    assert len(results["runs"]) == 2 * 2 * 2 and all(r["post_loss"] is not None for r in results["runs"])
