"""Figure 4, theory against simulation: every ``verify`` case, closed form vs measured, on the diagonal."""
from __future__ import annotations

from typing import ClassVar

import matplotlib.pyplot as plt
import numpy as np

from figures.common import Profiles
from figures.reproduction import KEY, SCORE, TEXT, TRAINED
from simulations.experiments import theory_vs_simulation as experiment
from theory.ground.statistics import Z_CHECK


class Config(Profiles, experiment.Settings):
    """Figure settings: simulations.experiments.theory_vs_simulation.Settings, whose defaults are the quick
    profile; ``full()`` applies FULL."""

    FULL: ClassVar[dict] = {"scale": 1.0}


EXPERIMENT = experiment  # the numbers: Settings, units(settings, seed), assemble(settings, seed, done)


COLUMNS = {  # how far each CSV column may move between machines (figures.reproduction; paper_repro.py compare)
    "name": KEY, "setting": KEY,
    # closed forms (and the Bayes floor's seeded Monte-Carlo), some at settings drawn by torch's float32 samplers,
    # which round one float32 ulp apart with other CPU kernels: seen 9e-8 relative (a meta-gradient check)
    "theory": TRAINED,
    # Monte-Carlo at fixed seeds, autograd values and meta-trained parameters; the fixed points' mean directions
    # lie near 0 (~1e-4, seen 3e-9 apart): floor 1e-7, far below the smallest interval here (±1.8e-3)
    "simulation": TRAINED.floor(1e-7),
    "tolerance": TEXT,  # the rule, with the residual or the interval printed in it
    "passed": TEXT, "kind": KEY, "score": SCORE,
}


def rows(results: dict) -> list[dict]:
    return results["checks"]


MARKERS = {"interval": ("o", "#1f77b4", f"Monte-Carlo interval ({Z_CHECK:g} se)"),
           "identity": ("s", "#d62728", "float64 / sympy identity"),
           "optimum": ("D", "#2ca02c", "meta-trained optimum"),
           "bound": ("^", "#9467bd", "bound (deep below best shallow)")}


def plot(results: dict):
    checks = results["checks"]
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(14, 7), gridspec_kw={"width_ratios": [1, 1.1]})
    on_diagonal = [(i, c) for i, c in enumerate(checks, 1) if c["kind"] != "bound"]
    values = [v for _, c in on_diagonal for v in (c["theory"], c["simulation"])]
    span = np.array([min(min(values), -1.0) * 1.5, max(values) * 1.5])
    ax.plot(span, span, color="#7f7f7f", lw=1, label="theory = simulation")
    for i, c in on_diagonal:
        marker, color, label = MARKERS[c["kind"]]
        err = c["score"] and abs(c["theory"] - c["simulation"]) / c["score"] if c["kind"] == "interval" else 0
        ax.errorbar(c["theory"], c["simulation"], yerr=err, fmt=marker, color=color, ms=5, capsize=3, label=label)
        ax.annotate(str(i), (c["theory"], c["simulation"]), fontsize=7, xytext=(5, -3), textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=8, loc="upper left")
    ax.set(xscale="symlog", yscale="symlog", xlabel="closed form (theory)", ylabel="measured (simulation)",
           title="(a) predicted vs measured (numbers index panel b)")
    ax.grid(alpha=0.3)
    y = np.arange(len(checks))[::-1]
    for yi, c in zip(y, checks):
        marker, color, _ = MARKERS[c["kind"]]
        bx.plot(max(c["score"], 1e-17), yi, marker, color=color if c["passed"] else "#ff7f0e")
    bx.axvline(1.0, color="black", lw=1, linestyle="--", label="allowed (score = 1)")
    bx.set_yticks(y, [f"{i}. {c['name']}" for i, c in enumerate(checks, 1)], fontsize=7)
    bx.set(xscale="log", xlim=(1e-17, 10), xlabel="deviation / allowed deviation (pass if ≤ 1)",
           title=f"(b) {sum(c['passed'] for c in checks)}/{len(checks)} checks pass")
    bx.legend(fontsize=8, loc="lower left")
    bx.grid(alpha=0.3, axis="x")
    fig.tight_layout()
    return fig


def caption(results: dict) -> str:
    checks = results["checks"]
    count = {k: sum(c["kind"] == k for c in checks) for k in MARKERS}
    worst = max(c["score"] for c in checks if c["kind"] == "interval")
    return (f"{sum(c['passed'] for c in checks)} of {len(checks)} verify checks pass: {count['interval']} closed "
            f"forms inside their Monte-Carlo 99.9% interval (largest deviation {worst:.2f} of the margin), "
            f"{count['identity']} float64/sympy identities, {count['optimum']} meta-trained optima and "
            f"{count['bound']} bound (deep MAML below the best shallow step).")
