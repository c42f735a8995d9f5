"""Fill the README's generated blocks: the formulas (theory.latex) and the figure gallery.

    python -m figures.readme        # after `python paper_repro.py` has written figures/generated

The gallery shows each figure's PNG with the one-line caption (measured numbers) stored in
its JSON; the formulas block is ``theory.latex.markdown()`` verbatim (a test checks it).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from theory.ground.atomic_io import atomic_write_text
from theory.latex import markdown

ROOT = Path(__file__).resolve().parent.parent
TITLES = {1: "Figure 1: the failure mode", 2: "Figure 2: the loss surface, shallow against depth 2",
          3: "Figure 3: depth and width", 4: "Figure 4: theory against simulation", 5: "Figure 5: the remedies",
          6: "Figure 6: when MAML can adapt fast", 7: "Figure 7: few-shot vision",
          8: "Figure 8: how many plain steps make one preconditioned step",
          9: "Figure 9: finite task sets and tasks of different hardness"}


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


def update(readme: Path = ROOT / "README.md", generated: Path = ROOT / "figures" / "generated") -> None:
    text = readme.read_text()
    text = replace_block(text, "formulas", markdown())
    text = replace_block(text, "figures", gallery(generated))
    atomic_write_text(readme, text)


if __name__ == "__main__":
    update()
