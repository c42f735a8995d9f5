"""`paper_repro.py compare RUN_DIR`: the committed CSVs against themselves hold; last-bit moves (what another
CPU does) hold; a closed-form cell moved by 1e-6 relative, other words in a text cell, or an accuracy moved
beyond its interval fail (exit 1); a folder that is not a run's output, a CSV with other columns or rows,
or a run of another seed exit 2 with one line. The rules themselves: figures.reproduction."""
from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import paper_repro
from figures.registry import FIGURES
from figures.reproduction import EXACT, KEY, TEXT, TRAINED, WIDTH, compare_column, spread, within
from theory.ground.statistics import Z_CHECK, Z_REPORT

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "figures" / "generated"


def _copy(tmp_path: Path) -> Path:
    """A run folder holding the committed CSVs and JSON records."""
    run = tmp_path / "run"
    run.mkdir(parents=True)
    for path in [*GENERATED.glob("fig*.csv"), *GENERATED.glob("fig*.json")]:
        shutil.copy(path, run / path.name)
    return run


def _rows(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _write(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def _csv(number: int) -> str:
    return f"fig{number}_{FIGURES[number][0]}.csv"


def _compare(capsys, *args: str) -> tuple[int, str, str]:
    status = paper_repro.main(["compare", *map(str, args), "--against", str(GENERATED)])
    out, err = capsys.readouterr()
    return status, out, err


def test_every_figure_declares_a_rule_for_each_of_its_columns():
    for number, (_, module) in FIGURES.items():
        header = next(csv.reader((GENERATED / _csv(number)).open(encoding="utf-8")))
        assert list(module.COLUMNS) == header, f"figure {number}"


def test_the_committed_csvs_reproduce_themselves(tmp_path, capsys):
    status, out, err = _compare(capsys, _copy(tmp_path))
    assert (status, err) == (0, ""), out
    assert "reproduces: every column holds" in out and "FAILS" not in out
    for number in FIGURES:  # every figure, every column, in the table
        assert all(f"\n{number} " in out and f" {column} " in out for column in FIGURES[number][1].COLUMNS)


def test_last_bit_moves_hold(tmp_path, capsys):
    """Every number of every CSV (keys included, text aside) moved by 1e-13 relative, as another CPU's
    kernels move them: compare still holds."""
    run = _copy(tmp_path)
    moved = 0
    for path in run.glob("fig*.csv"):
        rows = _rows(path)
        for row in rows:
            for column, cell in row.items():
                try:
                    value = float(cell)
                except ValueError:
                    continue
                if math.isfinite(value) and value != 0 and not cell.isdigit():
                    row[column], moved = repr(value * (1 + 1e-13)), moved + 1
        _write(path, rows)
    assert moved > 10_000
    status, out, _ = _compare(capsys, run)
    assert status == 0, out


def test_an_exact_cell_moved_by_1e_6_fails(tmp_path, capsys):
    run = _copy(tmp_path)
    rows = _rows(run / _csv(6))
    rows[17]["shallow_best_over_pre"] = repr(float(rows[17]["shallow_best_over_pre"]) * (1 + 1e-6))
    _write(run / _csv(6), rows)
    status, out, err = _compare(capsys, run)
    assert (status, err) == (1, "")
    failing = [line.split() for line in out.splitlines() if line.endswith("FAILS")]
    assert [(line[0], line[1]) for line in failing] == [("6", "shallow_best_over_pre")]
    assert "1e-06 rel" in out and "does not reproduce: 1 column(s) fail" in out


def test_an_accuracy_beyond_its_interval_fails_and_within_it_holds(tmp_path, capsys):
    run = _copy(tmp_path)
    rows = _rows(run / _csv(7))
    row = next(r for r in rows if r["test_accuracy"])
    allowed = Z_CHECK / Z_REPORT * math.hypot(float(row["ci95"]), float(row["ci95"]))
    original = float(row["test_accuracy"])
    for shift, expected in ((0.9 * allowed, 0), (1.1 * allowed, 1)):
        row["test_accuracy"] = repr(original + shift)
        _write(run / _csv(7), rows)
        status, out, _ = _compare(capsys, run)
        assert status == expected, out


def test_the_json_report_is_strict_json(tmp_path, capsys):
    run = _copy(tmp_path)
    rows = _rows(run / _csv(2))
    rows[3]["note"] = "other words"  # a text cell that differs: an infinite deviation, written as null
    _write(run / _csv(2), rows)
    assert paper_repro.main(["compare", str(run), "--against", str(GENERATED), "--json"]) == 1
    report = json.loads(capsys.readouterr().out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    failing = [c for f in report["figures"] for c in f["columns"] if not c["holds"]]
    assert [(c["column"], c["score"]) for c in failing] == [("note", None)]
    assert report["holds"] is False and report["not_in_run"] == []


def test_other_rows_are_named_not_compared_cell_by_cell(tmp_path, capsys):
    """Rows in another order (a renamed or moved check): one line saying where the rows part, not every column."""
    run = _copy(tmp_path)
    rows = _rows(run / _csv(4))
    rows[5], rows[6] = rows[6], rows[5]
    _write(run / _csv(4), rows)
    status, out, _ = _compare(capsys, run)
    assert status == 1
    assert f"FAILS: other rows than the reference from row 6 on: name {rows[5]['name']!r}" in out
    assert [line for line in out.splitlines() if line.endswith("FAILS")] == []  # no column verdicts for figure 4


def test_a_partial_run_compares_what_it_has(tmp_path, capsys):
    run = tmp_path / "only3"
    run.mkdir()
    shutil.copy(GENERATED / _csv(3), run / _csv(3))
    status, out, _ = _compare(capsys, run)
    assert status == 0
    assert "not in the run, not compared: figure(s) 1, 2, 4, 5, 6, 7, 8, 9" in out


def _bad_run(case: str, tmp_path: Path) -> tuple[Path, str]:
    """(RUN_DIR, what the one-line error must say) for a folder that is not a run's output."""
    if case in ("missing", "empty", "file"):
        empty = tmp_path / "empty"
        empty.mkdir()
        (empty / "notes.txt").write_text("no figures here\n")
        return {"missing": (tmp_path / "nowhere", "is not a folder"), "empty": (empty, "holds no figure CSVs"),
                "file": (empty / "notes.txt", "is not a folder")}[case]
    run = _copy(tmp_path)
    if case == "other columns":
        _write(run / _csv(5), [{**r, "extra": "1"} for r in _rows(run / _csv(5))])
        return run, "has other columns than figure 5 writes"
    if case == "fewer rows":
        _write(run / _csv(8), _rows(run / _csv(8))[:-1])
        return run, "has 225 rows, the reference 226"
    if case == "other seed":
        record = json.loads((run / _csv(3)).with_suffix(".json").read_text())
        (run / _csv(3)).with_suffix(".json").write_text(json.dumps({**record, "seed": 5}))
        return run, "was made with seed 5, the reference with 0"
    (run / _csv(2)).write_bytes(b"\xff\xfe\x00garbage")
    return run, "is not readable as CSV"


@pytest.mark.parametrize("case", ["missing", "empty", "file", "other columns", "fewer rows", "other seed",
                                  "not a CSV"])
def test_a_folder_that_is_not_a_run_exits_2_with_one_line(case, tmp_path, capsys):
    run, message = _bad_run(case, tmp_path)
    status, out, err = _compare(capsys, run)
    assert (status, out) == (2, "")
    assert err.startswith("paper_repro.py: error: argument RUN_DIR: ") and err.count("\n") == 1, err
    assert message in err


def test_a_bad_reference_names_against(tmp_path, capsys):
    assert paper_repro.main(["compare", str(GENERATED), "--against", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("paper_repro.py: error: argument --against: ")


def test_the_default_reference_is_the_committed_folder(tmp_path, capsys):
    """Without --against, the reference is figures/generated as committed (git's HEAD), so a run that has just
    overwritten the folder is compared with what was committed, not with itself."""
    assert paper_repro.main(["compare", str(_copy(tmp_path)), "--json"]) == 0
    against = json.loads(capsys.readouterr().out)["against"]
    in_git = (ROOT / ".git").exists()
    assert against.startswith("figures/generated as committed (HEAD ") if in_git else against == "figures/generated"


def test_no_run_dir_and_no_traceback_in_a_real_process(tmp_path):
    for args in (["compare"], ["compare", str(tmp_path)]):
        done = subprocess.run([sys.executable, "paper_repro.py", *args], cwd=ROOT, capture_output=True, text=True,
                              timeout=120, env={**os.environ, "MPLBACKEND": "Agg"})
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
        assert "RUN_DIR" in done.stderr


# -- the rules ----------------------------------------------------------------------------------------
def _one(rule, a: str, b: str, extra: dict | None = None) -> bool:
    return compare_column(rule, "x", [{"x": a, **(extra or {})}], [{"x": b, **(extra or {})}]).holds


@pytest.mark.parametrize(("rule", "a", "b", "holds"), [
    (EXACT, "0.375", "0.37500000000000006", True), (EXACT, "0.375", "0.375000001", False),
    (EXACT, "1e-29", "3e-29", True),  # near zero the absolute floor governs
    (TRAINED, "0.8036506225", "0.803650632", True), (TRAINED, "0.80365", "0.80366", False),
    (KEY, "∞", "∞", True), (KEY, "maml", "anil", False), (KEY, "0.2", "0.20000000000000004", True),
    (TEXT, "±0.315 (3.29 se, n=60000)", "±0.316 (3.29 se, n=60000)", True),  # one unit in the last digit
    (TEXT, "±0.315 (3.29 se, n=60000)", "±0.318 (3.29 se, n=60000)", False),
    (TEXT, "max rel. residual 1.3e-16 ≤ 1e-10", "max rel. residual 4.4e-16 ≤ 1e-10", True),
    (TEXT, "attracting", "repelling", False), (TEXT, "True", "False", False),
    (WIDTH, "0.01", "0.05", True), (WIDTH, "0.01", "nan", False), (WIDTH, "0.01", "-0.01", False),
    (EXACT, "", "0.5", False), (EXACT, "0.5", "text", False), (EXACT, "nan", "nan", True),
])
def test_rules(rule, a, b, holds):
    assert _one(rule, a, b) is holds


def test_the_interval_rule_widens_95_to_99_9_percent():
    rule = within("ci")
    allowed = Z_CHECK / Z_REPORT * math.hypot(0.03, 0.04)  # 0.084
    assert _one(rule, "0.5", repr(0.5 + 0.99 * allowed), {"ci": "0.03"}) is False  # both rows share extra: 0.03
    assert compare_column(rule, "x", [{"x": "0.5", "ci": "0.03"}], [{"x": repr(0.5 + 0.99 * allowed), "ci": "0.04"}]
                          ).holds
    assert not compare_column(rule, "x", [{"x": "0.5", "ci": "0.03"}],
                              [{"x": repr(0.5 + 1.01 * allowed), "ci": "0.04"}]).holds


def test_a_spread_is_held_relative_to_its_estimate():
    """A half-width over 3 nearly equal seeds moves far more, relative to itself, than the mean does: it is held
    to 1e-5 of the mean's magnitude (0.8), not of its own (0.001)."""
    rule = spread("mean")
    run, ref = {"x": "0.001", "mean": "0.8"}, {"x": repr(0.001 + 7e-6), "mean": "0.8"}
    assert compare_column(rule, "x", [run], [ref]).holds  # 7e-3 of itself, 9e-6 of the mean
    assert not compare_column(rule, "x", [run], [{**ref, "x": repr(0.001 + 9e-6)}]).holds
