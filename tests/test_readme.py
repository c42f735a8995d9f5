"""The README's generated blocks (formulas, command table) are current, and CI runs the README's commands
verbatim."""
import importlib.util
import re
from pathlib import Path

from theory.latex import markdown

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("readme_script", ROOT / "scripts" / "readme.py")
readme_script = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(readme_script)


def _block(name: str) -> str:
    block = re.search(rf"<!-- {name}:begin -->\n(.*?)<!-- {name}:end -->", (ROOT / "README.md").read_text(), re.S)
    assert block is not None, f"README lost its {name} markers"
    return block.group(1)


def test_readme_formulas_are_the_generated_ones():
    assert _block("formulas") == markdown(), "README formulas are stale: run `python scripts/readme.py`"


def test_readme_command_table_is_derived_from_the_configs():
    """Every subcommand, every option of its config dataclasses, the config's docstring: generated, never typed."""
    table = _block("commands")
    assert table == readme_script.command_table(), "README command table is stale: run `python scripts/readme.py`"
    assert "`python paper_repro.py compare RUN_DIR [--against AGAINST] [--json]`" in table
    assert "[--task regression\\|classification]" in table and "[--group prob=P" in table


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


def test_every_registered_figure_has_a_gallery_title():
    from figures.registry import FIGURES

    assert set(readme_script.TITLES) == set(FIGURES), "scripts/readme.py TITLES: one title per registered figure"
