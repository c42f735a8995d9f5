"""Fill the README's generated blocks: the formulas (theory.latex), the command table (the config dataclasses
of paper_repro.COMMANDS) and the figure gallery (each figure's JSON).

    python scripts/readme.py        # after `python paper_repro.py` has written figures/generated

The command table's rows are derived from the configs: the usage line from their fields (one option each, the
positional arguments by their metavar), the config's path, and what the command does from the config's
docstring. The gallery shows each figure's PNG with the one-line caption (measured numbers) stored in its JSON;
the formulas block is ``theory.latex.markdown()`` verbatim. tests/test_readme.py keeps all three current.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import re
import sys
import typing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

import paper_repro  # noqa: E402
from theory.ground.atomic_io import atomic_write_text  # noqa: E402
from theory.ground.options import flag_of  # noqa: E402
from theory.latex import markdown  # noqa: E402

TITLES = {1: "Figure 1: the failure mode", 2: "Figure 2: the loss surface, shallow against depth 2",
          3: "Figure 3: depth and width", 4: "Figure 4: theory against simulation", 5: "Figure 5: the remedies",
          6: "Figure 6: when MAML can adapt fast", 7: "Figure 7: few-shot vision",
          8: "Figure 8: how many plain steps make one preconditioned step",
          9: "Figure 9: finite task sets and tasks of different hardness",
          10: "Figure 10: how meta-training gets there", 11: "Figure 11: every adaptation rule on one axis"}


def replace_block(text: str, name: str, body: str) -> str:
    """Replace the text between <!-- name:begin --> and <!-- name:end -->."""
    pattern = re.compile(rf"(<!-- {name}:begin -->\n).*?(<!-- {name}:end -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"README has no {name} markers")
    return pattern.sub(lambda m: m.group(1) + body + m.group(2), text)


def gallery(generated: Path) -> str:
    parts = []
    for path in sorted(generated.glob("fig*.json"), key=lambda p: int(re.findall(r"\d+", p.stem)[0])):
        record = json.loads(path.read_text())
        png = path.with_suffix(".png").relative_to(ROOT)
        title = TITLES.get(record["figure"], f"Figure {record['figure']}")
        parts.append(f"**{title}** ({record['profile']} profile, seed {record['seed']}). {record['caption']}\n\n"
                     f"![{title}]({png.as_posix()})\n")
    return "\n".join(parts)


def _usage(field: dataclasses.Field, hint) -> str:
    """One field as the usage line shows it: RUN_DIR, [--full], [--task regression|classification], [--dim DIM]."""
    flag = flag_of(field)
    if field.metadata.get("positional"):
        return flag
    kind = typing.get_args(hint)[0] if type(None) in typing.get_args(hint) else hint
    if kind is bool:
        return f"[{flag}]"
    choices = field.metadata.get("choices")
    listed = kind is tuple or typing.get_origin(kind) is tuple
    if choices and not listed:
        value = "|".join(map(str, choices))
    else:
        value = field.metadata.get("metavar") or ("A,B,…" if listed else flag.lstrip("-").upper().replace("-", "_"))
    return f"[{flag} {value}]" + ("…" if field.metadata.get("repeat") else "")


def command_table() -> str:
    """The command-line reference, one row per subcommand of paper_repro.COMMANDS, from its config dataclasses."""
    rows = ["| command | config | what it does |", "| --- | --- | --- |"]
    for name in paper_repro.COMMANDS:
        classes = paper_repro.config_classes(name)
        parts = [_usage(f, typing.get_type_hints(config)[f.name]) for config in classes
                 for f in dataclasses.fields(config)]
        head = "python paper_repro.py [figures]" if name == "figures" else f"python paper_repro.py {name}"
        usage = " ".join([head, *parts]).replace("|", "\\|")
        doc = " ".join(inspect.getdoc(classes[0]).split()).replace("|", "\\|")
        rows.append(f"| `{usage}` | `{classes[0].__module__}.{classes[0].__name__}` | {doc} |")
    return "\n".join(rows) + "\n"


def update(readme: Path = ROOT / "README.md", generated: Path = ROOT / "figures" / "generated") -> None:
    text = readme.read_text()
    text = replace_block(text, "formulas", markdown())
    text = replace_block(text, "commands", command_table())
    text = replace_block(text, "figures", gallery(generated))
    atomic_write_text(readme, text)


if __name__ == "__main__":
    update()
