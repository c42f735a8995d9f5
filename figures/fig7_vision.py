"""Figure 7, few-shot vision: MAML and ANIL × {plain, LinNet, KFO} × {shallow 2-block, deep 4-block}
conv nets, novel-class test accuracy for each available dataset: every dataset's test classes are
absent from meta-training.

Each setting is meta-trained from ``seeds`` training seeds (seed s: the initialisation, the training
episodes and the test episodes); its accuracy is the mean over seeds with a Student-t 95% interval
over them, so the interval covers training randomness and test-episode sampling together. One
training run's interval over its test episodes would not: float32 training turns last-bit
differences (another CPU's kernels) into another training run, which lands outside it. Differences
between a remedy and plain use the same seeds, so they are paired by seed.

digits (scikit-learn's 8×8 handwritten digits, bundled; classes are (digit, rotation) pairs, digits
0–5 meta-train, 8–9 meta-test) always runs; Omniglot, CIFAR-FS and
mini-ImageNet run when ``data_root`` holds them (``paper_repro.py --data-root DIR``), and are
listed as unavailable (with the loader's reason) otherwise. The quick profile is digits only,
small enough for the main job's budget (each run is short: the accuracies are far from the
literature's, but the comparison is like for like); ``--full`` uses literature-scale iterations
(60,000 meta-steps: a GPU job).
"""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt

from figures.common import Profiles
from figures.reproduction import EXACT, KEY, TEXT, WIDTH, within
from simulations.experiments import vision_grid as experiment
from simulations.experiments.vision_grid import DEPTHS, METHODS, REMEDIES
from simulations.statistics import mean_ci95

COLORS = {"plain": "#7f7f7f", "LinNet": "#1f77b4", "KFO": "#2ca02c"}


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.vision_grid.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"iterations": 60_000, "meta_batch": 32, "eval_tasks": 600, "width": None, "seeds": 5}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "dataset": KEY, "method": KEY, "depth": KEY, "remedy": KEY,
    "test_accuracy": within("ci95"),  # float32 training: another CPU's last bits give another training run
    "ci95": WIDTH, "seeds": EXACT, "test_tasks": EXACT, "diverged_seeds": EXACT, "note": TEXT,
}


def rows(results: dict) -> list[dict]:
    # no timings in the CSV: the same seed gives the same bytes
    out = [{"dataset": r["dataset"], "method": r["method"], "depth": r["depth"], "remedy": r["remedy"],
            "test_accuracy": r.get("test_accuracy", ""), "ci95": r.get("ci95", ""), "seeds": r["seeds"],
            "test_tasks": results["eval_tasks"], "diverged_seeds": r["diverged_seeds"],
            "note": "; ".join(f"seed {p['seed']} diverged: {p['diverged']}" for p in r["per_seed"] if "diverged" in p)}
           for r in results["runs"]]
    out += [{"dataset": d, "method": "", "depth": "", "remedy": "", "test_accuracy": "", "ci95": "", "seeds": "",
             "test_tasks": "", "diverged_seeds": "", "note": f"unavailable: {reason}"}
            for d, reason in results["unavailable"].items()]
    return out


def plot(results: dict):
    datasets = sorted({r["dataset"] for r in results["runs"]}) or ["(none)"]
    fig, axes = plt.subplots(1, len(datasets), figsize=(6.5 * len(datasets), 4.4), squeeze=False)
    for ax, dataset in zip(axes[0], datasets):
        groups = [(m, d) for m in METHODS for d in DEPTHS]
        width = 0.26
        for j, remedy in enumerate(REMEDIES):
            for g, (method, depth) in enumerate(groups):
                run = _find(results, dataset, method, depth, remedy)
                x = g + (j - 1) * width
                if run is None or "test_accuracy" not in run:
                    continue
                ax.bar(x, run["test_accuracy"], width, yerr=run["ci95"], capsize=3, color=COLORS[remedy],
                       label=remedy if g == 0 else None)
                seeds = [p["test_accuracy"] for p in run["per_seed"] if "test_accuracy" in p]
                ax.plot([x] * len(seeds), seeds, "o", ms=2.5, color="black", alpha=0.6,
                        label="one training seed" if (g, j) == (0, 0) else None)
        ax.axhline(1 / results["ways"], color="black", lw=1, linestyle=":", label="chance")
        ax.set_xticks(range(len(groups)), [f"{m.upper()}\n{d}" for m, d in groups])
        ax.set(ylim=(0, 1), ylabel=f"novel-class test accuracy\n(mean ± 95% CI over {results['seeds']} training seeds)",
               title=f"{dataset}: {results['ways']}-way {results['shots']}-shot, {results['iterations']} meta-steps"
                     + _split_text(results, dataset))
        ax.grid(alpha=0.3, axis="y")
        ax.legend(fontsize=8, loc="upper left", ncol=3)
    if results["unavailable"]:
        fig.text(0.01, -0.02, "not run (data not found): " + ", ".join(results["unavailable"]), fontsize=7)
    fig.tight_layout()
    return fig


def _find(results: dict, dataset: str, method: str, depth: str, remedy: str) -> dict | None:
    return next((r for r in results["runs"] if (r["dataset"], r["method"], r["depth"], r["remedy"])
                 == (dataset, method, depth, remedy)), None)


def _split_text(results: dict, dataset: str) -> str:
    """'\nclasses: 24 train / 8 validation / 8 test (disjoint)' from a run's report, '' if none ran."""
    counts = next((p["classes"] for r in results["runs"] if r["dataset"] == dataset for p in r["per_seed"]
                   if "classes" in p), None)
    if counts is None:
        return ""
    return "\nclasses: " + " / ".join(f"{n} {split}" for split, n in counts.items()) + " (disjoint)"


def paired_differences(results: dict) -> list[dict]:
    """Each remedy against plain (same dataset, method and depth): the mean over seeds of the per-seed
    accuracy difference (the same seeds: the same test episodes) with its Student-t interval at a family-wise
    95% level (Bonferroni over all the comparisons made: each at 1 − 0.05/m), and whether it excludes 0."""
    pairs = []
    for plain in (r for r in results["runs"] if r["remedy"] == "plain"):
        base = {p["seed"]: p["test_accuracy"] for p in plain["per_seed"] if "test_accuracy" in p}
        for remedy in (m for m in REMEDIES if m != "plain"):
            run = _find(results, plain["dataset"], plain["method"], plain["depth"], remedy)
            diffs = [p["test_accuracy"] - base[p["seed"]] for p in run["per_seed"]
                     if "test_accuracy" in p and p["seed"] in base]
            if len(diffs) >= 2:
                pairs.append(({"dataset": plain["dataset"], "method": plain["method"], "depth": plain["depth"],
                               "remedy": remedy}, diffs))
    level = 1 - 0.05 / max(len(pairs), 1)
    out = []
    for key, diffs in pairs:
        mean, ci = mean_ci95(diffs, level)
        out.append(key | {"difference": mean, "interval": ci, "level": level, "resolved": abs(mean) > ci})
    return out


def caption(results: dict) -> str:
    parts = [f"{r['method'].upper()} {r['depth']} {r['remedy']} {r['test_accuracy']:.1%} ± {r['ci95']:.1%}"
             for r in results["runs"] if "test_accuracy" in r]
    diffs = paired_differences(results)
    resolved = [f"{d['method'].upper()} {d['depth']} {d['remedy']} {d['difference']:+.1%} ± {d['interval']:.1%}"
                for d in diffs if d["resolved"]]
    ranking = (f" Each remedy against plain, paired by seed, at a family-wise 95% level (Bonferroni over the "
               f"{len(diffs)} comparisons): {len(resolved)} resolved" + (": " + "; ".join(resolved) if resolved else "")
               + "; for the others the interval holds 0, so no ranking is claimed." if diffs else "")
    diverged = sum(r["diverged_seeds"] for r in results["runs"])
    skipped = f" Not run (no data): {', '.join(results['unavailable'])}." if results["unavailable"] else ""
    return (f"{results['ways']}-way {results['shots']}-shot novel-class test accuracy (test classes unseen in "
            f"meta-training) after {results['iterations']} meta-steps, mean ± 95% interval over "
            f"{results['seeds']} training seeds ({results['eval_tasks']} test episodes each; the interval covers "
            f"training randomness and test episodes together): " + "; ".join(parts) + "." + ranking
            + (f" {diverged} run(s) diverged." if diverged else "") + skipped)
