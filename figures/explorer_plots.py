"""The explorer's panels as matplotlib figures and text (figures/explorer.py), and its static HTML snapshot.

Panel 1: the shallow post-adaptation loss against α for 1 and k inner steps (α*_k marked), beside the levels that
do not depend on α (pre-adaptation loss, optimal preconditioner, ANIL at width h, Bayes floor) and depth-2 MAML's
best at the setting's α; panel 2: figure 6's phase diagram with the setting marked; panel 4: the best loss of every
adaptation rule at the setting (plain steps, Meta-SGD, iMAML, ANIL, depth 2, P*, the Bayes floor); the table of
numbers with how each was obtained, as ``explore --json`` labels them. ``snapshot_html`` writes all of it, numbers
as text and plots as inline PNG, into one self-contained page (``paper_repro.py app --export``).
"""
from __future__ import annotations

import base64
import html
import io
import json

import matplotlib.pyplot as plt
import numpy as np

from figures import explorer_compute as ex

ROWS = [  # (key of explore --json's "theory", label)
    ("pre_adaptation_loss", "pre-adaptation loss"),
    ("shallow_post_loss", "shallow post-adaptation loss at α"),
    ("shallow_optimal_alpha", "shallow optimal α*_k"),
    ("shallow_best_post_loss", "shallow best post-adaptation loss"),
    ("preconditioned_best_post_loss", "optimal preconditioner, best loss"),
    ("meta_sgd_best_post_loss", "Meta-SGD (best per-parameter steps), best loss"),
    ("anil_best_post_loss", "ANIL at width h, best loss"),
    ("depth2_best_post_loss", "depth-2 MAML at width h and α, best loss"),
    ("implicit_best_post_loss", "iMAML (best scalar λ), best loss"),
    ("bayes_optimal_loss", "Bayes floor (posterior mean)"),
]
RULES = [  # (key, label, colour): panel 4's bars, one per adaptation rule, at the rule's best
    ("shallow_best_post_loss", "{k} plain step(s), best α", "tab:blue"),
    ("meta_sgd_best_post_loss", "Meta-SGD: a step per parameter", "tab:cyan"),
    ("implicit_best_post_loss", "iMAML: ridge, best scalar λ", "tab:olive"),
    ("anil_best_post_loss", "ANIL, width {h}", "tab:purple"),
    ("depth2_best_post_loss", "depth-2 MAML, width {h}, at α", "tab:red"),
    ("preconditioned_best_post_loss", "optimal preconditioner P*", "tab:green"),
    ("bayes_optimal_loss", "Bayes floor (any rule)", "black"),
]
INTERVALS = {"implicit_best_post_loss": "implicit_best_post_loss_ci95", "bayes_optimal_loss": "bayes_optimal_loss_ci95"}
LEVELS = [  # (key, label, colour, line style): panel 1's horizontal lines
    ("pre_adaptation_loss", "pre-adaptation", "0.35", ":"),
    ("preconditioned_best_post_loss", "optimal preconditioner", "tab:green", "--"),
    ("anil_best_post_loss", "ANIL best, width h", "tab:purple", "-."),
    ("bayes_optimal_loss", "Bayes floor", "black", "-"),
]


def value_text(theory: dict, key: str) -> str:
    """One number as the table shows it: 6 decimals, the Monte-Carlo interval, or why it is missing."""
    value = theory.get(key)
    if value is None:
        note = theory["notes"].get(key, "")
        return "pending…" if note.startswith("pending") else "n/a"
    text = f"{value:.6f}"
    if theory.get(INTERVALS.get(key, "")):  # a Monte-Carlo value: its 95% interval
        text += f" ± {theory[INTERVALS[key]]:.6f}"
    if key == "implicit_best_post_loss" and theory.get("implicit_best_lambda") is not None:
        text += f" at λ = {theory['implicit_best_lambda']:.4g}"
    return text


def table_rows(theory: dict) -> list[dict]:
    """[{"quantity", "value", "obtained", "note"}] in ROWS order."""
    out = []
    for key, label in ROWS:
        how = "pending" if theory["notes"].get(key, "").startswith("pending") else ex.method(theory, key)
        out.append({"quantity": label, "value": value_text(theory, key), "obtained": how,
                    "note": theory["notes"].get(key, "")})
    return out


def table_html(theory: dict) -> str:
    """The numbers as an HTML table (id explorer-numbers; each value cell carries data-key)."""
    pad = "style='padding:3px 10px;vertical-align:top;border-bottom:1px solid #ddd'"
    cells = "".join(f"<tr><td {pad}>{html.escape(r['quantity'])}</td><td {pad} data-key='{key}'><b>"
                    f"{html.escape(r['value'])}</b></td><td {pad}>{html.escape(r['obtained'])}</td>"
                    f"<td {pad[:-1]};font-size:80%;color:#555'>{html.escape(r['note'])}</td></tr>"
                    for (key, _), r in zip(ROWS, table_rows(theory)))
    head = "".join(f"<th {pad} align=left>{h}</th>" for h in ("quantity", "value", "obtained", "note"))
    return f"<table id='explorer-numbers' style='border-collapse:collapse'><tr>{head}</tr>{cells}</table>"


def loss_figure(panel: dict, theory: dict):
    """Panel 1: shallow loss curves against α for 1 and k steps (α*_k marked) and the α-free levels."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colours = ["tab:blue", "tab:orange"]
    for curve, colour in zip(panel["curves"], colours):
        if "note" in curve:
            continue
        ax.plot(curve["alpha"], curve["loss"], color=colour, label=f"shallow, {curve['steps']} step(s) (exact)")
        ax.plot([curve["optimal_alpha"]], [curve["best_loss"]], "o", color=colour)
        ax.annotate(f"α*={curve['optimal_alpha']:.3g}", (curve["optimal_alpha"], curve["best_loss"]),
                    textcoords="offset points", xytext=(4, -12), fontsize=8, color=colour)
    for key, label, colour, style in LEVELS:
        if theory.get(key) is not None:
            ax.axhline(theory[key], color=colour, linestyle=style, linewidth=1.2,
                       label=f"{label} ({ex.method(theory, key)})")
    if theory.get("bayes_optimal_loss_ci95"):  # Monte-Carlo: its 95% interval
        floor, half = theory["bayes_optimal_loss"], theory["bayes_optimal_loss_ci95"]
        ax.axhspan(floor - half, floor + half, color="black", alpha=0.12, linewidth=0)
    if theory.get("depth2_best_post_loss") is not None:
        ax.plot([theory["alpha"]], [theory["depth2_best_post_loss"]], "s", color="tab:red",
                label=f"depth-2 best at α, width h ({ex.method(theory, 'depth2_best_post_loss')})")
    ax.axvline(theory["alpha"], color="0.6", linewidth=0.8)
    pre = theory["pre_adaptation_loss"]
    ax.set(xlim=(0, panel["alpha_max"]), ylim=(0, 1.35 * pre if pre else 1.0), xlabel="inner step size α",
           ylabel="expected post-adaptation loss", title="Post-adaptation loss at θ* = μ")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def rules_figure(theory: dict, steps: int, width: int):
    """Panel 4: the best loss of each adaptation rule at this setting (figure 11's axis at one point), as bars from
    the pre-adaptation loss (dotted), each labelled with how it was obtained; Monte-Carlo values carry their 95%
    interval; a rule without a value says why (pending, or n/a)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    labels = [label.format(k=steps, h=width) for _, label, _ in RULES]
    for row, (key, _, colour) in enumerate(RULES):
        value = theory.get(key)
        if value is None:
            ax.text(0, row, "  " + value_text(theory, key), va="center", fontsize=8, color="0.4")
            continue
        half = theory.get(INTERVALS.get(key, "")) or None
        ax.barh(row, value, color=colour, alpha=0.8, xerr=half, capsize=3 if half else 0)
        ax.text(value, row, f" {value:.4f} ({ex.method(theory, key)})", va="center", fontsize=8)
    pre = theory.get("pre_adaptation_loss")
    if pre is not None:
        ax.axvline(pre, color="0.35", linestyle=":", linewidth=1.2, label=f"pre-adaptation loss {pre:.4f}")
        ax.legend(fontsize=7, loc="lower right")
    ax.set_yticks(range(len(RULES)), labels, fontsize=8)
    ax.invert_yaxis()  # the plain step on top, the floor at the bottom
    ax.set(xlim=(0, 1.45 * pre if pre else 1.0), xlabel="expected post-adaptation loss at the rule's best (lower is "
           "better)", title="Adaptation rules at this setting (θ* = μ)")
    fig.tight_layout()
    return fig


def phase_figure(grid: dict, point: dict):
    """Panel 2: figure 6's best shallow post/pre ratio over (d/K, r/d), the setting marked."""
    fig, ax = plt.subplots(figsize=(5.4, 4.0))
    x, y, z = np.array(grid["d_over_k"]), np.array(grid["r_over_d"]), np.array(grid["shallow_ratio"])
    mesh = ax.pcolormesh(x, y, z, shading="auto", cmap="viridis")
    contours = ax.contour(x, y, z, levels=[0.5, 0.8, 0.9, 0.95], colors="white", linewidths=0.8)
    ax.clabel(contours, fontsize=7, fmt="%g")
    fig.colorbar(mesh, ax=ax, label="best shallow post / pre loss")
    if point is not None:
        ax.plot([point["d_over_k"]], [point["r_over_d"]], marker="*", markersize=16, color="tab:red",
                markeredgecolor="white")
    ax.set(xscale="log", xlabel="d / K", ylabel="r / d",
           title=f"Figure 6 (closed forms, Σx = I, K = {grid['support']}, s²/V = {grid['noise_var']:g})")
    fig.tight_layout()
    return fig


def png_base64(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def snapshot_html(controls: ex.Controls, searches: ex.Searches, timeout: float = 300.0) -> str:
    """A self-contained page of the app at ``controls``: the table, the plots (inline PNG), the command line and
    its --json "theory" (the searched half awaited up to ``timeout`` seconds; pending after it)."""
    config = ex.config_of(controls)
    panel = ex.panel_one(config)
    theory = ex.full_theory(config, searches.wait(config, timeout))
    point = ex.phase_point(config)
    grid = ex.phase_grid(config.support, config.noise_var / config.effective_task_var) \
        if not np.isinf(config.support) else None
    command = ex.shell_command(controls)
    images = [png_base64(loss_figure(panel, theory)), png_base64(rules_figure(theory, config.steps, config.width))]
    if grid is not None:
        images.append(png_base64(phase_figure(grid, point)))
    pictures = "".join(f"<img alt='panel' src='data:image/png;base64,{b}' style='max-width:48%'>" for b in images)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>MAML explorer: snapshot</title></head>"
            f"<body style='font-family:sans-serif;max-width:1200px;margin:auto'>"
            f"<h1>MAML explorer: the default setting</h1><p>A static snapshot of the explorer app "
            f"(<code>python paper_repro.py app</code>) at explore's defaults.</p>{table_html(theory)}"
            f"<div>{pictures}</div><h2>The same from the command line</h2><pre>{html.escape(command)}</pre>"
            f"<pre id='explore-json'>{html.escape(json.dumps(theory, indent=2, ensure_ascii=False))}</pre>"
            f"</body></html>")
