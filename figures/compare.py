"""``paper_repro.py compare RUN_DIR``: does a run reproduce the committed figures, and by how much?

For every figure CSV in RUN_DIR (``figN_name.csv``, as the figures command writes them), every
column is held against the same figure's committed CSV under the rule the figure declares for it
(``COLUMNS`` beside its Config; the rules are figures.reproduction's). The reference is
figures/generated as committed (read from git's HEAD, so a run that has just overwritten the
folder is compared with what was there before; the folder itself outside a git checkout), or the
folder ``--against DIR`` as it is on disk. The report is a table: figure, column, cells compared,
the largest deviation, the share of what the rule allows, the rule and the verdict; exit status 0
when every column holds, 1 when any does not, 2 (one line) when RUN_DIR or the reference is not a
run's output, a CSV has other columns or rows than its figure writes, or the two were made with
another seed or profile. Figures absent from RUN_DIR are listed, not compared. Where the JSON
records beside the CSVs are present, the environments that made the two (library versions, lock
file, CPU kernels) are printed where they differ: that is where last-bit differences come from.
"""
from __future__ import annotations

import csv
import io
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from figures.registry import FIGURES
from figures.reproduction import compare_tables, first_key_mismatch
from theory.ground.errors import UsageError
from theory.ground.options import flags, option

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = "figures/generated"  # the reference, relative to the repository


@dataclass(frozen=True)
class CompareConfig:
    """Hold every figure CSV in RUN_DIR against figures/generated as committed (git's HEAD), or against
    `--against DIR` as it is on disk, column by column under each figure's rules; prints figure, column, cells,
    largest deviation, share of what the rule allows, rule and verdict; exit status 0 when all hold, 1 when any
    fails, 2 when RUN_DIR is not a run's output (see "Reproducing the numbers")."""

    run_dir: str = option("", "folder of a run's figure CSVs (what `paper_repro.py [--out DIR]` wrote)",
                          positional=True, metavar="RUN_DIR")
    against: str | None = option(None, "reference folder, read as it is on disk (default: figures/generated as "
                                       "committed, from git's HEAD)")


@dataclass(frozen=True)
class Figure:
    """One figure's CSV text and JSON record, from a folder or from git."""

    number: int
    where: str  # the CSV's path as shown in messages
    text: str | None  # None: unreadable (bytes that are not UTF-8)
    record: dict


def _csv_name(number: int) -> str:
    return f"fig{number}_{FIGURES[number][0]}.csv"


def _json(text: str | None) -> dict:
    try:
        record = json.loads(text) if text else {}
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _from_folder(folder: Path, option_name: str) -> dict[int, Figure]:
    if not folder.is_dir():
        raise UsageError(f"argument {option_name}: {str(folder)!r} is not a folder")
    found = {}
    for number in FIGURES:
        path = folder / _csv_name(number)
        if path.is_file():
            try:
                text = path.read_text(encoding="utf-8")
            except UnicodeDecodeError:
                text = None
            except OSError as err:
                raise UsageError(f"argument {option_name}: {path} is not readable ({err.strerror})") from None
            record = path.with_suffix(".json")
            found[number] = Figure(number, str(path), text, _json(record.read_text() if record.is_file() else None))
    return found


def _git(*args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.decode("utf-8", "replace") if done.returncode == 0 else None


def _committed() -> tuple[dict[int, Figure], str]:
    """The committed figures/generated at git's HEAD, and how the report names it; the folder on disk when
    this is not a git checkout (an unpacked archive)."""
    listed = _git("ls-tree", "--name-only", "HEAD", f"{COMMITTED}/")
    commit = _git("rev-parse", "--short", "HEAD")
    if listed is None or commit is None:
        return _from_folder(ROOT / COMMITTED, "--against"), COMMITTED
    names = set(listed.split())
    found = {}
    for number in FIGURES:
        name = f"{COMMITTED}/{_csv_name(number)}"
        if name in names:
            record = _git("show", f"HEAD:{name[:-4]}.json") if f"{name[:-4]}.json" in names else None
            found[number] = Figure(number, f"HEAD:{name}", _git("show", f"HEAD:{name}"), _json(record))
    return found, f"{COMMITTED} as committed (HEAD {commit.strip()})"


def _rows(figure: Figure, option_name: str) -> list[dict]:
    """The CSV's rows, checked to have exactly its figure's columns."""
    expected = list(FIGURES[figure.number][1].COLUMNS)
    if figure.text is None:
        raise UsageError(f"argument {option_name}: {figure.where} is not readable as CSV (not UTF-8 text)")
    try:
        reader = csv.DictReader(io.StringIO(figure.text, newline=""))
        rows, header = list(reader), reader.fieldnames or []
    except csv.Error as err:
        raise UsageError(f"argument {option_name}: {figure.where} is not readable as CSV ({err})") from None
    if header != expected or any(None in row or None in row.values() for row in rows):
        raise UsageError(f"argument {option_name}: {figure.where} has other columns than figure {figure.number} "
                         f"writes ({','.join(expected)})")
    return rows


def _environment_differences(run: dict, ref: dict) -> dict:
    """provenance key -> (run's, reference's), for the keys that differ."""
    a, b = run.get("provenance", {}), ref.get("provenance", {})
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def _compare_figure(run: Figure, ref: Figure) -> dict:
    rows, reference = _rows(run, "RUN_DIR"), _rows(ref, "--against")
    for key in ("seed", "profile"):
        if key in run.record and key in ref.record and run.record[key] != ref.record[key]:
            raise UsageError(f"argument RUN_DIR: {run.where} was made with {key} {run.record[key]}, the reference "
                             f"with {ref.record[key]}: not a reproduction of it")
    if len(rows) != len(reference):
        raise UsageError(f"argument RUN_DIR: {run.where} has {len(rows)} rows, the reference {len(reference)}: "
                         f"made with other settings")
    rules = FIGURES[run.number][1].COLUMNS
    mismatch = first_key_mismatch(rules, rows, reference)
    if mismatch is not None:  # other rows: comparing their values cell by cell would say nothing
        return {"figure": run.number, "csv": Path(run.where).name, "holds": False, "columns": [],
                "problem": f"other rows than the reference from row {mismatch[0] + 1} on: {mismatch[1]} "
                           f"{mismatch[2]!r} against {mismatch[3]!r}"}
    columns = compare_tables(rules, rows, reference)
    return {"figure": run.number, "csv": Path(run.where).name, "holds": all(c.holds for c in columns),
            "columns": [{"column": c.column, "cells": c.cells, "largest_deviation": c.largest,
                         "score": c.deviation if c.deviation != float("inf") else None, "rule": c.rule.name,
                         "rule_text": c.rule.describe(), "holds": c.holds} for c in columns]}


def run(config: CompareConfig, progress: bool = False) -> dict:
    """Compare every figure CSV of ``config.run_dir`` with the reference; the report of ``format_report``."""
    runs = _from_folder(Path(config.run_dir), flags(CompareConfig)["run_dir"])
    if config.against is None:
        refs, reference = _committed()
    else:
        refs, reference = _from_folder(Path(config.against), "--against"), config.against
    for found, name in ((runs, "RUN_DIR"), (refs, "--against")):
        if not found:
            shown = config.run_dir if name == "RUN_DIR" else reference
            raise UsageError(f"argument {name}: {shown!r} holds no figure CSVs (figN_name.csv): not a run's output")
    figures, environment = [], {}
    for number, figure in runs.items():
        if number not in refs:
            _rows(figure, "RUN_DIR")
            figures.append({"figure": number, "csv": _csv_name(number), "columns": [], "holds": False,
                            "problem": f"no {_csv_name(number)} in the reference"})
            continue
        figures.append(_compare_figure(figure, refs[number]))
        environment.update(_environment_differences(figure.record, refs[number].record))
    return {"run_dir": config.run_dir, "against": reference, "holds": all(f["holds"] for f in figures),
            "figures": figures, "not_in_run": sorted(set(refs) - set(runs)),
            "environment_differences": {k: {"run": a, "reference": b} for k, (a, b) in environment.items()}}


def exit_status(report: dict) -> int:
    return 0 if report["holds"] else 1


def format_report(report: dict) -> str:
    header = ("figure", "column", "cells", "largest deviation", "of allowed", "rule", "verdict")
    table = []
    for fig in report["figures"]:
        if "problem" in fig:
            table.append((str(fig["figure"]), "-", "-", "-", "-", "-", f"FAILS: {fig['problem']}"))
        for c in fig["columns"]:
            share = "inf" if c["score"] is None else f"{c['score']:.2g}"
            table.append((str(fig["figure"]), c["column"], str(c["cells"]), c["largest_deviation"], share,
                          c["rule_text"], "holds" if c["holds"] else "FAILS"))
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    lines = [f"{report['run_dir']} against {report['against']}", "",
             "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    if report["not_in_run"]:
        lines.append(f"\nnot in the run, not compared: figure(s) {', '.join(map(str, report['not_in_run']))}")
    if report["environment_differences"]:
        lines.append("\nmade in different environments (where last-bit differences come from):")
        lines += [f"  {k}: run {v['run']}, reference {v['reference']}"
                  for k, v in report["environment_differences"].items()]
    columns = sum(not c["holds"] for f in report["figures"] for c in f["columns"])
    figures = [str(f["figure"]) for f in report["figures"] if "problem" in f]
    lines.append("\n" + ("reproduces: every column holds" if report["holds"] else
                         f"does not reproduce: {columns} column(s) fail"
                         + (f"; figure(s) {', '.join(figures)} not comparable" if figures else "")))
    return "\n".join(lines)
