"""The explorer app (figures/explorer.py, ``paper_repro.py app``): its numbers are ``explore --theory-only
--json``'s (the same functions, on the config its command line spells out), its process imports no torch, it runs
headless as a script, its bad input is the command line's one line, ``--export`` writes the default numbers, and
in a real browser (Debian's chromium driven by Playwright) changing d shows the closed form for the new d.

The browser test needs /usr/bin/chromium (``apt-get install -y chromium``) and the playwright package; without
them it is skipped, except where the environment variable CI is set: there it fails. EXPLORER_SCREENSHOT=PATH
keeps its screenshot of the app (the README's figures/explorer.png is made so).
"""
from __future__ import annotations

import html
import json
import math
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import paper_repro
from figures import explorer_compute as ex
from simulations.experiments.explore import ExploreConfig, explore_theory, searched_theory
from theory import shallow_maml
from theory.ground.errors import ParameterError, UsageError

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SETTINGS = [  # controls whose searched half is quick (no many-start depth-2 or ANIL search), each case of the theory
    ex.Controls(),
    ex.Controls(dim=30, support=3, rank=4, task_var=2.0, noise_var=0.5),  # Monte-Carlo Bayes floor
    ex.Controls(dim=12, width=16, task_structure="power law", task_decay=1.5, input_structure="power law",
                steps=2),  # anisotropic Σx and Σw, two steps (wishart_words)
    ex.Controls(dim=40, support=math.inf, mean_norm=1.0, steps=3),  # K = ∞: the population limit; μ ≠ 0
    ex.Controls(alpha=0.05, steps=4),  # a given α, four steps (exact rational arithmetic)
    ex.Controls(dim=6, width=40, task_structure="spectrum", task_spectrum="3, 2,1e-1,0,0,0"),  # typed, as the CLI
]


def _json_theory(argv: list[str], capsys) -> dict:
    assert paper_repro.main(argv) == 0
    return json.loads(capsys.readouterr().out)["theory"]


@pytest.mark.parametrize("controls", SETTINGS, ids=lambda c: " ".join(ex.command_line(c)[2:-1])[:50] or "defaults")
def test_the_app_shows_explores_numbers(controls, capsys):
    """The command line the app prints builds the app's config, and its --json "theory" is the app's numbers."""
    config = ex.config_of(controls)
    argv = ex.command_line(controls)
    assert paper_repro.parse(argv)[1] == config
    assert shlex.split(ex.shell_command(controls))[2:] == argv
    shown = ex.full_theory(config, searched_theory(config))
    printed = _json_theory(argv, capsys)
    assert json.dumps(shown) == json.dumps(printed)  # the same numbers, keys and order
    assert [c["steps"] for c in ex.panel_one(config)["curves"]] == sorted({1, controls.steps})


@pytest.mark.parametrize("controls", [ex.Controls(), ex.Controls(dim=20, steps=2, width=8),
                                      ex.Controls(mean_norm=1.0)], ids=["defaults", "two-steps", "mean"])
def test_panel_three_is_the_dynamics_commands_curve(controls, capsys):
    """Panel 3's curves are ``paper_repro.py dynamics --json``'s for the command it shows, or its one-line refusal."""
    from figures import explorer_dynamics as xd

    panel = xd.dynamics_panel(ex.config_of(controls))
    for part in panel.values():
        if "command" not in part:  # refused: the command line's own line (ANIL needs μ = 0 and one step)
            assert part["note"].startswith("paper_repro.py: error: argument --"), part
            continue
        assert paper_repro.main(shlex.split(part["command"])[2:]) == 0
        printed = json.loads(capsys.readouterr().out)
        assert (printed["times"], printed["loss"], printed["limit"]) == (part["times"], part["loss"], part["limit"])
    assert "loss" in panel["shallow"]


def test_an_empty_spectrum_asks_for_one():
    """On the command line --task-spectrum '' means none (the subspace); in the app, a spectrum still to type."""
    with pytest.raises(UsageError, match="give exactly d = 3"):
        ex.config_of(ex.Controls(**SPECTRUM))


def test_curves_pass_through_the_optimum():
    """Panel 1's k-step curve is the exact loss: its minimum over the grid is not below α*_k's best loss."""
    panel = ex.panel_one(ex.config_of(ex.Controls(steps=3)))
    for curve in panel["curves"]:
        assert min(curve["loss"]) >= curve["best_loss"] - 1e-12
        assert 0 < curve["optimal_alpha"] < panel["alpha_max"]


@pytest.mark.parametrize("controls", SETTINGS[1:4], ids=["monte-carlo", "power-laws", "K-inf"])
def test_the_panels_draw_pending_and_done(controls):
    """Panel 1 and the table with the searched half pending, then done; panel 2 where K is finite."""
    from figures import explorer_plots as xp

    config = ex.config_of(controls)
    for searched in (None, searched_theory(config)):
        theory = ex.full_theory(config, searched)
        xp.plt.close(xp.loss_figure(ex.panel_one(config), theory))
        table = xp.table_html(theory)
        assert ("pending" in table) == (searched is None)
        assert f"{theory['shallow_best_post_loss']:.6f}" in table
    if not math.isinf(config.support):
        grid = ex.phase_grid(config.support, config.noise_var / config.effective_task_var)
        xp.plt.close(xp.phase_figure(grid, ex.phase_point(config)))


@pytest.mark.parametrize("controls", SETTINGS[1:4], ids=["monte-carlo", "power-laws", "K-inf"])
def test_panel_four_draws_every_rule_at_its_value_or_says_why(controls):
    """Panel 4: one bar per rule with a value, its length that value, Monte-Carlo values with their interval; a
    rule without one (pending, or n/a at K = ∞) is a text in its row, never a bar."""
    from figures import explorer_plots as xp

    config = ex.config_of(controls)
    for searched in (None, searched_theory(config)):
        theory = ex.full_theory(config, searched)
        fig = xp.rules_figure(theory, config.steps, config.width)
        ax = fig.axes[0]
        widths = [bar.get_width() for bar in ax.patches]
        expected = [theory[key] for key, _, _ in xp.RULES if theory.get(key) is not None]
        assert widths == expected
        texts = [t.get_text() for t in ax.texts]
        missing = [key for key, _, _ in xp.RULES if theory.get(key) is None]
        assert sum(t.strip() in ("pending…", "n/a") for t in texts) == len(missing)
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels[0] == f"{config.steps} plain step(s), best α" and labels[-1] == "Bayes floor (any rule)"
        intervals = len(ax.collections)  # error bars: one per Monte-Carlo value with a non-zero interval
        assert intervals == sum(bool(theory.get(ci)) and theory.get(key) is not None
                                for key, ci in xp.INTERVALS.items())
        xp.plt.close(fig)


def test_the_searched_half_comes_from_a_child_process():
    """Searches: pending at first, then searched_theory's very dict, computed in a process of its own."""
    config = ex.config_of(ex.Controls(dim=30))
    searches = ex.Searches()
    try:
        assert searches.get(config) is None  # pending: never blocks the caller
        assert searches.wait(config, timeout=120) == searched_theory(config)
    finally:
        searches.stop()


SPECTRUM = {"dim": 3, "task_structure": "spectrum"}


@pytest.mark.parametrize("controls", [ex.Controls(rank=60), ex.Controls(dim=3, rank=4), ex.Controls(task_var=0.0),
                                      ex.Controls(alpha=2000.0), ex.Controls(**SPECTRUM, task_spectrum="1,x,0"),
                                      ex.Controls(**SPECTRUM, task_spectrum="1,2"),
                                      ex.Controls(**SPECTRUM, task_spectrum="-1,0,0"),
                                      ex.Controls(**SPECTRUM, task_spectrum="1,nan,0")])
def test_bad_input_is_the_command_lines_line(controls, capsys):
    with pytest.raises((ParameterError, UsageError)) as caught:
        ex.config_of(controls)
    assert paper_repro.main(ex.command_line(controls)) == 2
    assert capsys.readouterr().err == ex.error_line(caught.value) + "\n"


BAD_INPUT = [  # paper_repro.py app: (argv, the option the one-line message names, words of the valid range)
    (["app", "--port", "0"], "--port", ">= 1 and <= 65535"),
    (["app", "--port", "65536"], "--port", ">= 1 and <= 65535"),
    (["app", "--port", "http"], "--port", "not an integer"),
    (["app", "--export", "{tmp}"], "--export", "it is a folder: name a file in it"),
    (["app", "--export", ""], "--export", "a path (not empty)"),
    (["app", "--export", "{tmp}/file/x.html"], "--export", "is a file, not a folder"),
    (["app", "--export", "/proc/x.html"], "--export", "a file path this process can write"),
    (["app", "--port", "1", "--port", "2"], "--port", "given more than once"),
]


@pytest.mark.parametrize(("argv", "flag", "valid"), BAD_INPUT, ids=[" ".join(a) for a, _, _ in BAD_INPUT])
def test_app_bad_input_exits_2_with_one_line(argv, flag, valid, tmp_path, capsys):
    (tmp_path / "file").write_text("a regular file\n")
    assert paper_repro.main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"paper_repro.py: error: argument {flag}: "), err
    assert valid in err, err
    assert [p.name for p in tmp_path.iterdir()] == ["file"]  # nothing written


def test_a_port_in_use_is_one_line(capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert paper_repro.main(["app", "--no-browser", "--port", str(port)]) == 2
    assert capsys.readouterr().err == (f"paper_repro.py: error: argument --port: {port} is in use on 127.0.0.1 "
                                       "(choose another port)\n")


def _imports(code: str, *args: str) -> tuple[subprocess.CompletedProcess, set[str]]:
    """Run python -X importtime; the top-level packages it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args, *(["-c", code] if code else [])], cwd=ROOT,
                          capture_output=True, text=True, timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
    names = {m.group(1).split(".")[0] for m in re.finditer(r"\|\s+([\w.]+)\s*$", proc.stderr, re.M)}
    return proc, names


def test_the_app_modules_import_no_torch():
    proc, names = _imports("import figures.explorer_compute, figures.explorer_plots, figures.explorer_dynamics, "
                           "figures.app")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "torch" not in names and "numpy" in names


def test_the_notebook_runs_headless_as_a_script_without_torch():
    proc, names = _imports("", "figures/explorer.py")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "marimo" in names and "torch" not in names


def test_export_writes_the_default_numbers(tmp_path, capsys):
    path = tmp_path / "explorer.html"
    assert paper_repro.main(["app", "--export", str(path)]) == 0
    assert "wrote" in capsys.readouterr().out
    page = html.unescape(path.read_text(encoding="utf-8"))
    theory = explore_theory(ExploreConfig(theory_only=True))
    for key in ("shallow_best_post_loss", "preconditioned_best_post_loss", "depth2_best_post_loss"):
        assert f'"{key}": {theory[key]!r}' in page, key
    assert "<script" not in page and "data:image/png;base64," in page  # self-contained: no script, inline plots


# -- the real browser --------------------------------------------------------------------------------------
def _browser_or_skip():
    """Playwright's sync API, or skip (fail where CI is set) with the reason in one line."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        reason = "the playwright package is not installed (pip install -r requirements.lock)"
    else:
        if Path(CHROMIUM).exists():
            return sync_playwright
        reason = f"no browser at {CHROMIUM} (apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"browser test cannot run in CI: {reason}")
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serve(port: int) -> subprocess.Popen:
    """``paper_repro.py app --no-browser --port P``: its URL line must come within 30 s."""
    process = subprocess.Popen([sys.executable, "paper_repro.py", "app", "--no-browser", "--port", str(port)],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    start = time.monotonic()
    line = process.stdout.readline()
    assert f"http://127.0.0.1:{port}" in line, (line, process.poll())
    assert time.monotonic() - start < 30
    return process


def test_app_serves_within_30_s_and_stops_on_sigterm():
    """Without a browser too: the URL line within 30 s, the page served there, and a plain kill stops the server
    (exit 0, the port free again)."""
    port = _free_port()
    process = _serve(port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read()
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and "stopped" in out
    with socket.socket() as probe:  # nothing listens there any more (TIME_WAIT left by the request is no owner)
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))


def _shown_theory(page) -> dict:
    return json.loads(page.locator("#explore-json").inner_text())


def test_in_a_real_browser_changing_d_shows_the_closed_form(tmp_path):
    sync_playwright = _browser_or_skip()
    port = _free_port()
    process = _serve(port)
    shot = tmp_path / "explorer.png"
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1500, "height": 2350})
            try:
                page.goto(f"http://127.0.0.1:{port}", timeout=60_000)
                page.wait_for_selector("#explore-json", timeout=60_000)
                assert _shown_theory(page)["shallow_best_post_loss"] == explore_theory(
                    ExploreConfig(theory_only=True))["shallow_best_post_loss"]
                box = page.locator("input[aria-label*='d (input dimension)']")
                box.fill("80")
                box.press("Enter")
                page.wait_for_function("document.querySelector('#explore-command').innerText.includes('--dim 80')",
                                       timeout=60_000)
                expected = shallow_maml.best_post_adaptation_loss(ExploreConfig(dim=80, theory_only=True).family())
                assert _shown_theory(page)["shallow_best_post_loss"] == expected
                cell = page.locator("#explorer-numbers td[data-key='shallow_best_post_loss']")
                assert cell.inner_text().strip() == f"{expected:.6f}"
                rank = page.locator("input[aria-label*='r (subspace rank)']")  # bad input: r > d
                rank.fill("90")
                rank.press("Enter")
                with pytest.raises(ParameterError) as caught:
                    ex.config_of(ex.Controls(dim=80, rank=90))
                page.get_by_text(ex.error_line(caught.value)).first.wait_for(timeout=60_000)
                rank.fill("2")  # and the app goes on
                rank.press("Enter")
                page.wait_for_function("document.querySelector('#explore-json').innerText.startsWith('{')",
                                       timeout=60_000)
                assert _shown_theory(page)["shallow_best_post_loss"] == expected
                page.wait_for_function("!document.querySelector('#explorer-numbers').innerText.includes('pending')",
                                       timeout=90_000)  # the searched half arrives without a reload
                page.wait_for_selector("#dynamics-commands", timeout=90_000)  # and panel 3
                page.screenshot(path=str(shot), full_page=True)
            except Exception:
                page.screenshot(path=str(shot), full_page=True)
                print(f"screenshot of the failing page: {shot}")
                raise
            finally:
                browser.close()
    finally:
        process.terminate()
        process.wait(timeout=20)
    if os.environ.get("EXPLORER_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["EXPLORER_SCREENSHOT"])
