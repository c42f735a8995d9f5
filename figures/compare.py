"""``paper_repro.py compare RUN_DIR``: does a run reproduce the committed figures, and by how much?

For every figure CSV in RUN_DIR (``figN_name.csv``, as the figures command writes them), every
column is held against the same figure's CSV in ``--against`` (default: the committed
figures/generated) under the rule the figure declares for it (``COLUMNS`` beside its Config; the
rules are figures.reproduction's). The report is a table: figure, column, cells compared, the
largest deviation, the rule and the verdict; exit status 0 when every column holds, 1 when any does
not, 2 (one line) when RUN_DIR or the reference is not a run's output, a CSV has other columns or
rows than its figure writes, or the two were made with another seed or profile. Figures absent
from RUN_DIR are listed, not compared. Where the JSON records beside the CSVs are present, the
environments that made the two (library versions, lock file, CPU kernels) are printed when they
differ: that is where last-bit differences come from.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from figures.registry import FIGURES
from figures.reproduction import compare_tables
from simulations.options import flags, option
from theory.errors import UsageError


@dataclass(frozen=True)
class CompareConfig:
    """A run's output folder held against the reference figures."""

    run_dir: str = option("", "folder of a run's figure CSVs (what `paper_repro.py --out DIR` wrote)",
                          positional=True, metavar="RUN_DIR")
    against: str = option("figures/generated", "the reference folder: the committed CSVs")


def _where(config: CompareConfig, name: str) -> str:
    return flags(CompareConfig)[name]


def _figure_csvs(config: CompareConfig, name: str) -> dict[int, Path]:
    """figure number -> its CSV in the folder of option ``name``; UsageError if there is none."""
    folder = Path(getattr(config, name))
    if not folder.is_dir():
        raise UsageError(f"argument {_where(config, name)}: {str(folder)!r} is not a folder")
    found = {n: folder / f"fig{n}_{stem}.csv" for n, (stem, _) in FIGURES.items()}
    found = {n: path for n, path in found.items() if path.is_file()}
    if not found:
        raise UsageError(f"argument {_where(config, name)}: {str(folder)!r} holds no figure CSVs "
                         f"(figN_name.csv): not a run's output")
    return found


def _read(config: CompareConfig, name: str, number: int, path: Path) -> list[dict]:
    """The CSV's rows, checked to have exactly figure ``number``'s columns."""
    expected = list(FIGURES[number][1].COLUMNS)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            rows, header = list(reader), reader.fieldnames or []
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise UsageError(f"argument {_where(config, name)}: {path} is not readable as CSV ({err})") from None
    if header != expected or any(None in row or None in row.values() for row in rows):
        raise UsageError(f"argument {_where(config, name)}: {path} has other columns than figure {number} writes "
                         f"({','.join(expected)})")
    return rows


def _record(path: Path) -> dict:
    """The JSON record beside a CSV ({} if absent or unreadable: it only adds context)."""
    try:
        return json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}


def _environment_differences(run: dict, ref: dict) -> dict:
    """provenance key -> (run's, reference's), for the keys that differ (the commit aside)."""
    a, b = run.get("provenance", {}), ref.get("provenance", {})
    return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if k != "git_commit" and a.get(k) != b.get(k)}


def run(config: CompareConfig, progress: bool = False) -> dict:
    """Compare every figure CSV of ``config.run_dir`` with the reference; the report of ``format_report``."""
    runs, refs = _figure_csvs(config, "run_dir"), _figure_csvs(config, "against")
    figures, environment = [], {}
    for number, path in runs.items():
        rows = _read(config, "run_dir", number, path)
        if number not in refs:
            figures.append({"figure": number, "csv": path.name, "columns": [], "holds": False,
                            "problem": f"no {path.name} in the reference"})
            continue
        reference = _read(config, "against", number, refs[number])
        record, ref_record = _record(path), _record(refs[number])
        for key in ("seed", "profile"):
            if key in record and key in ref_record and record[key] != ref_record[key]:
                raise UsageError(f"argument RUN_DIR: {path.name} was made with {key} {record[key]}, the reference "
                                 f"with {ref_record[key]}: not a reproduction of it")
        if len(rows) != len(reference):
            raise UsageError(f"argument RUN_DIR: {path} has {len(rows)} rows, the reference {len(reference)}: "
                             f"made with other settings")
        columns = compare_tables(FIGURES[number][1].COLUMNS, rows, reference)
        environment.update(_environment_differences(record, ref_record))
        figures.append({"figure": number, "csv": path.name, "holds": all(c.holds for c in columns),
                        "columns": [{"column": c.column, "cells": c.cells, "largest_deviation": c.largest,
                                     "score": c.deviation if c.deviation != float("inf") else None,
                                     "rule": c.rule.name, "rule_text": c.rule.describe(), "holds": c.holds}
                                    for c in columns]})
    return {"run_dir": config.run_dir, "against": config.against, "holds": all(f["holds"] for f in figures),
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
    failing = sum(not c["holds"] for f in report["figures"] for c in f["columns"]) + sum(
        "problem" in f for f in report["figures"])
    lines.append("\n" + ("reproduces: every column holds" if report["holds"] else
                         f"does not reproduce: {failing} column(s) fail"))
    return "\n".join(lines)
