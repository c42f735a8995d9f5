"""The README's generated formulas are current, and CI runs the README's test command verbatim."""
import re
from pathlib import Path

from theory.latex import markdown

ROOT = Path(__file__).resolve().parent.parent


def test_readme_formulas_are_the_generated_ones():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"<!-- formulas:begin -->\n(.*?)<!-- formulas:end -->", text, re.S)
    assert block is not None, "README lost its formulas markers"
    assert block.group(1) == markdown(), "README formulas are stale: run `python -m figures.readme`"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = next(line for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert command.strip() in readme
