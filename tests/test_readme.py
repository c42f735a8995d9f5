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


def test_ci_runs_the_readme_commands():
    """CI runs the README's main job, its compare step and its test command, each verbatim, all from the lock."""
    readme = (ROOT / "README.md").read_text()
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines()
                if line.startswith((".venv/", "python3 "))]
    assert [c for c in commands if "pytest" in c], "CI runs no test"
    assert any(c.endswith("paper_repro.py") for c in commands), "CI runs no main job"
    assert any("paper_repro.py compare" in c for c in commands), "CI does not compare with the committed CSVs"
    for command in commands:
        assert f"\n{command}\n" in readme, f"not a README command: {command}"
        assert "requirements.txt" not in command, "CI installs from the lock"
