"""When a regenerated figure CSV reproduces the committed one: one rule per column, declared beside each
figure's Config (``COLUMNS``), applied cell by cell by ``compare_tables``.

Byte-identical output across machines is not something floating-point software can promise: NumPy's
and PyTorch's SIMD kernels round differently on different CPUs, so the same seed gives the same
numbers only to the last bits. What each column may move by depends on how its numbers are made:

  KEY          names the row: text equal; a number (a grid point) to 1e-12 relative
  EXACT        a closed form in float64: 1e-9 relative (1e-12 absolute near zero)
  FIXED_SEED   Monte-Carlo at fixed seeds in float64, nothing trained: 1e-9 relative, like EXACT
  TRAINED      float64 meta-training or optimisation, and anything computed from torch's seeded float32
               draws: rounding differences grow over thousands of steps, and torch's samplers round
               one float32 ulp (6e-8) apart with other CPU kernels (seen: up to 6e-7 relative with
               ATEN_CPU_CAPABILITY=default): 1e-5 relative (1e-9 absolute)
  spread(col)  an interval's half-width computed from samples that move like column ``col``: the
               samples' differences amplify their last bits, so it is held to ``col``'s rule relative
               to ``col``'s magnitude, not its own
  SCORE        a check's deviation over its allowance: 1e-4 absolute (identity residuals of ~1e-16
               over a 1e-10 tolerance move it by ~1e-6)
  TEXT         text: the same words; each number in it as a printed number, to one unit in its last
               printed digit plus 1e-6 relative (1e-12 absolute)
  within(col)  a statistic whose spread the seed does not fix (float32 training, where last-bit
               differences give another training run): the two values' difference within
               (Z_CHECK / Z_REPORT)·√(ci_a² + ci_b²), the 95% half-widths in ``col`` widened to the
               toolkit's 99.9% check level
  WIDTH        an interval's half-width used by a ``within`` rule: finite and ≥ 0 in both runs (how
               far it may move is part of what the interval says)

An empty cell must be empty in both. Rows are matched by position, and the KEY columns say whether
they are the same rows.
"""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

from theory.ground.statistics import Z_CHECK, Z_REPORT


@dataclass(frozen=True)
class Rule:
    """How far one column's cells may move between a run and the reference."""

    name: str
    rtol: float = 0.0
    atol: float = 0.0
    interval: str | None = None  # within(): the column holding the 95% half-widths
    text: bool = False  # compare as text, numbers in it as printed numbers
    width: bool = False  # a half-width: finite and >= 0
    scale: str | None = None  # spread(): the column whose magnitude the tolerances are relative to

    def floor(self, atol: float) -> Rule:
        """The same rule with another absolute floor (for a column whose values lie near zero)."""
        return dataclasses.replace(self, atol=atol)

    def describe(self) -> str:
        if self.interval is not None:
            return f"interval: 1.68·√(a²+b²) of {self.interval}"
        if self.width:
            return "width: finite, ≥ 0"
        if self.text:
            return "text: numbers to their last digit"
        if self is KEY:
            return "key: text equal, numbers 1e-12"
        if self.scale is not None:
            return f"spread: {self.rtol:g} of |{self.scale}|"
        return f"{self.name}: {self.rtol:g} rel, {self.atol:g} abs"


KEY = Rule("key", rtol=1e-12, atol=1e-300)
EXACT = Rule("exact", rtol=1e-9, atol=1e-12)
FIXED_SEED = Rule("fixed seed", rtol=1e-9, atol=1e-12)
TRAINED = Rule("trained", rtol=1e-5, atol=1e-9)
SCORE = Rule("score", rtol=1e-6, atol=1e-4)
TEXT = Rule("text", rtol=1e-6, atol=1e-12, text=True)
WIDTH = Rule("width", width=True)


def within(interval_column: str) -> Rule:
    """A statistic compared through the 95% half-widths in ``interval_column``."""
    return Rule("interval", interval=interval_column)


def spread(of: str, rule: Rule = TRAINED) -> Rule:
    """An interval half-width computed from samples that move like column ``of`` (under ``rule``)."""
    return dataclasses.replace(rule, name="spread", scale=of)


@dataclass(frozen=True)
class ColumnResult:
    """One column of one figure: how many cells were compared, the largest deviation and whether it holds."""

    column: str
    rule: Rule
    cells: int
    deviation: float  # the largest |a − b| over what the rule allows (≤ 1 holds); 0 for WIDTH and equal text
    largest: str  # that cell's deviation as printed: relative, or absolute where the absolute floor governs
    holds: bool


_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def _allowed(rule: Rule, a: float, b: float) -> float:
    return max(rule.atol, rule.rtol * max(abs(a), abs(b)))


def _last_digit(token: str) -> float:
    """One unit in the last printed digit of a number written as ``token`` ('0.315' -> 0.001, '1.3e-16' -> 1e-17)."""
    mantissa, _, exponent = token.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return 10.0 ** (int(exponent or 0) - decimals)


def _text_deviation(rule: Rule, a: str, b: str) -> tuple[float, float]:
    """(deviation over allowance, largest absolute difference) of two texts: inf if the words differ."""
    if _NUMBER.sub("#", a) != _NUMBER.sub("#", b):
        return math.inf, math.inf
    worst, largest = 0.0, 0.0
    for x, y in zip(_NUMBER.findall(a), _NUMBER.findall(b)):
        fx, fy = float(x), float(y)
        gap = abs(fx - fy)
        allowed = max(_last_digit(x), _last_digit(y)) + _allowed(rule, fx, fy)
        worst, largest = max(worst, gap / allowed), max(largest, gap)
    return worst, largest


def _cell(rule: Rule, a: str, b: str, row_a: dict, row_b: dict) -> tuple[float, str]:
    """(deviation over what ``rule`` allows, the deviation as printed) of one pair of non-empty cells."""
    fa, fb = _float(a), _float(b)
    if (fa is None) != (fb is None):
        return math.inf, "number against text"
    if rule.width:
        ok = math.isfinite(fa) and math.isfinite(fb) and fa >= 0 and fb >= 0
        return (0.0 if ok else math.inf), "-"
    if fa is None or rule.text:
        if a == b:
            return 0.0, "0"
        if not rule.text:
            return math.inf, "other text"
        worst, gap = _text_deviation(rule, a, b)
        return worst, ("other words" if gap == math.inf else f"{gap:.2g} abs")
    if not (math.isfinite(fa) and math.isfinite(fb)):
        return (0.0, "0") if a == b else (math.inf, f"{a} against {b}")
    gap = abs(fa - fb)
    if rule.interval is not None:
        wa, wb = _float(row_a[rule.interval]), _float(row_b[rule.interval])
        allowed = (Z_CHECK / Z_REPORT) * math.hypot(wa, wb) if wa is not None and wb is not None else 0.0
        return (gap / allowed if allowed > 0 else (0.0 if gap == 0 else math.inf)), f"{gap:.3g} abs"
    magnitude = max(abs(fa), abs(fb))
    if rule.scale is not None:  # relative to the estimate the interval belongs to
        magnitude = max(abs(_float(row_a[rule.scale]) or 0.0), abs(_float(row_b[rule.scale]) or 0.0))
    allowed = max(rule.atol, rule.rtol * magnitude)
    relative = rule.rtol * magnitude >= rule.atol
    shown = "0" if gap == 0 else (f"{gap / magnitude:.2g} rel" if relative else f"{gap:.2g} abs")
    return gap / allowed, shown


def compare_column(rule: Rule, column: str, run: list[dict], ref: list[dict]) -> ColumnResult:
    """``column`` of two tables with the same rows, under ``rule``: the cell that uses most of its allowance."""
    worst, largest, cells = 0.0, "0" if not rule.width else "-", 0
    for row_a, row_b in zip(run, ref):
        a, b = row_a[column], row_b[column]
        if a == "" and b == "":
            continue
        cells += 1
        deviation, shown = (math.inf, "empty against a value") if "" in (a, b) else _cell(rule, a, b, row_a, row_b)
        if deviation > worst or cells == 1:
            worst, largest = deviation, shown
    return ColumnResult(column, rule, cells, worst, largest, worst <= 1.0)


def compare_tables(rules: dict[str, Rule], run: list[dict], ref: list[dict]) -> list[ColumnResult]:
    """Every column of two CSV tables (lists of rows as read by csv.DictReader) under ``rules``; the tables must
    have the same rows (count), and the columns those of ``rules`` (checked by the caller)."""
    if len(run) != len(ref):
        raise ValueError(f"{len(run)} rows against {len(ref)} in the reference")
    return [compare_column(rule, column, run, ref) for column, rule in rules.items()]


def first_key_mismatch(rules: dict[str, Rule], run: list[dict], ref: list[dict]) -> tuple | None:
    """(row index, column, run's cell, reference's cell) of the first row whose KEY cells differ, or None."""
    keys = [column for column, rule in rules.items() if rule is KEY]
    for i, (row_a, row_b) in enumerate(zip(run, ref)):
        for column in keys:
            if not compare_column(KEY, column, [row_a], [row_b]).holds:
                return i, column, row_a[column], row_b[column]
    return None
