"""The explorer: the failure mode and its remedies under sliders, a marimo app (``python paper_repro.py app``).

Served by ``marimo run figures/explorer.py``; runs headless as a script (``python figures/explorer.py``). The
numbers are ``paper_repro.py explore --theory-only --json``'s, from the same functions (figures.explorer_compute);
this file holds the controls and the layout only. Its process imports no torch.
"""
import marimo

__generated_with = "0.25.2"
app = marimo.App(width="full", app_title="MAML explorer")


@app.cell
def _():
    import html
    import json
    import math
    import sys
    from pathlib import Path

    import marimo as mo

    _root = str(Path(__file__).resolve().parents[1])
    if _root not in sys.path:  # marimo run figures/explorer.py puts figures/ first, not the repository
        sys.path.insert(0, _root)

    import matplotlib.pyplot as plt

    from figures import explorer_compute as ex
    from figures import explorer_dynamics as xd
    from figures import explorer_plots as xp
    from theory.ground.errors import ParameterError, UsageError

    searches = ex.Searches()  # the slow half of the theory, in a child process, cached per setting
    dynamics_searches = ex.Searches("dynamics")  # panel 3's curves, likewise
    return ParameterError, UsageError, dynamics_searches, ex, html, json, math, mo, plt, searches, xd, xp


@app.cell
def _(ex, mo):
    D = ex.Controls()  # explore's defaults
    dim = mo.ui.slider(2, 400, value=D.dim, include_input=True, label="d (input dimension)")
    support = mo.ui.slider(1, 200, value=D.support, include_input=True, label="K (support points)")
    support_inf = mo.ui.checkbox(label="K = ∞")
    task_structure = mo.ui.dropdown(list(ex.TASK_STRUCTURES), value=D.task_structure, label="task structure")
    rank = mo.ui.slider(1, 400, value=D.rank, include_input=True, label="r (subspace rank)")
    task_var = mo.ui.slider(0.05, 5.0, step=0.05, value=D.task_var, show_value=True,
                            label="V (variance per task direction; power law: scale)")
    task_decay = mo.ui.slider(0.0, 3.0, step=0.1, value=D.task_decay, show_value=True,
                              label="p (task spectrum V·i^−p)")
    task_spectrum = mo.ui.text_area(value=D.task_spectrum, placeholder="a1,…,ad: d eigenvalues ≥ 0 of Σw",
                                    label="Σw's eigenvalues (spectrum), as --task-spectrum reads them", rows=2)
    input_structure = mo.ui.dropdown(list(ex.INPUT_STRUCTURES), value=D.input_structure, label="input spectrum")
    input_decay = mo.ui.slider(0.0, 3.0, step=0.1, value=D.input_decay, show_value=True,
                               label="p (input spectrum ∝ i^−p, tr Σx = d)")
    mean_norm = mo.ui.slider(0.0, 5.0, step=0.1, value=D.mean_norm, show_value=True, label="‖μ‖")
    noise_var = mo.ui.slider(0.0, 2.0, step=0.01, value=D.noise_var, show_value=True, label="s² (label noise)")
    use_optimal = mo.ui.checkbox(value=D.alpha is None, label="use α* (the shallow one-step optimum)")
    alpha = mo.ui.slider(0.001, 1.0, step=0.001, value=0.1, show_value=True, label="α (inner step)")
    steps = mo.ui.slider(1, 20, value=D.steps, include_input=True, label="k (inner steps)")
    width = mo.ui.slider(1, 128, value=D.width, include_input=True, label="h (width of ANIL and depth-2)")
    tick = mo.ui.refresh(options=["1s"], default_interval="1s", label="pending values checked every")
    return (alpha, dim, input_decay, input_structure, mean_norm, noise_var, rank, steps, support, support_inf,
            task_decay, task_spectrum, task_structure, task_var, tick, use_optimal, width)


@app.cell
def _(alpha, dim, input_decay, input_structure, mean_norm, mo, noise_var, rank, steps, support, support_inf,
      task_decay, task_spectrum, task_structure, task_var, tick, use_optimal, width):
    mo.vstack([
        mo.md("# MAML explorer: when can it adapt fast?\nThe closed forms of `theory/` at the MAML-optimal "
              "initialisation θ* = μ, for the setting below (defaults: `paper_repro.py explore`'s)."),
        mo.hstack([mo.vstack([dim, mo.hstack([support, support_inf], justify="start"), steps, width]),
                   mo.vstack([task_structure, rank, task_var, task_decay, task_spectrum]),
                   mo.vstack([input_structure, input_decay, mean_norm, noise_var,
                              mo.hstack([use_optimal, alpha], justify="start"), tick])],
                  align="start", widths="equal"),
    ])
    return


@app.cell
def _(ParameterError, UsageError, alpha, dim, ex, input_decay, input_structure, math, mean_norm, noise_var, rank,
      steps, support, support_inf, task_decay, task_spectrum, task_structure, task_var, use_optimal, width):
    controls = ex.Controls(dim=dim.value, support=math.inf if support_inf.value else support.value,
                           task_structure=task_structure.value, rank=rank.value, task_var=task_var.value,
                           task_decay=task_decay.value, task_spectrum=task_spectrum.value,
                           input_structure=input_structure.value,
                           input_decay=input_decay.value, mean_norm=mean_norm.value, noise_var=noise_var.value,
                           alpha=None if use_optimal.value else alpha.value, steps=steps.value, width=width.value)
    command, config, panel, error = "", None, None, None
    try:  # the fast half: closed forms and curves, at every move of a control
        command = ex.shell_command(controls)
        config = ex.config_of(controls)
        panel = ex.panel_one(config)
    except (ParameterError, UsageError) as err:  # bad input: the command line's one line; the app keeps running
        config, panel, error = None, None, ex.error_line(err)
    return command, config, error, panel


@app.cell
def _(mo):
    get_searched, set_searched = mo.state(None)  # (config, searched_theory) once its search is done
    get_dynamics, set_dynamics = mo.state(None)  # (config, dynamics_panel) likewise
    return get_dynamics, get_searched, set_dynamics, set_searched


@app.cell
def _(config, dynamics_searches, get_dynamics, get_searched, searches, set_dynamics, set_searched, tick):
    _tick = tick.value  # a new tick reruns this cell: has a running search finished?
    if config is not None:
        for _runner, _get, _set in ((searches, get_searched, set_searched),
                                    (dynamics_searches, get_dynamics, set_dynamics)):
            _done = _runner.get(config)
            _have = _get()
            if _done is not None and (_have is None or _have[0] != config):
                _set((config, _done))
    return


@app.cell
def _(config, ex, get_searched, panel):
    _have = get_searched()
    theory = None if panel is None else ex.full_theory(config, _have[1] if _have and _have[0] == config else None)
    return (theory,)


@app.cell
def _(config, error, ex, mo, plt, theory, xp):
    if error is not None:
        numbers = mo.callout(mo.md(f"`{error}`"), kind="danger")
    else:
        _fig = xp.loss_figure(ex.panel_one(config), theory)
        numbers = mo.hstack([mo.vstack([mo.md("## 1. Post-adaptation loss against α"), mo.as_html(_fig)]),
                             mo.vstack([mo.md("### The numbers, and how each is obtained"),
                                        mo.Html(xp.table_html(theory))])], align="start", widths=[1, 1])
        plt.close(_fig)
    numbers  # noqa: B018 (a marimo cell shows its last expression)
    return


@app.cell
def _(config, ex, math, mo, plt, xp):
    if config is None:
        phase = mo.md("")
    elif math.isinf(config.support):
        phase = mo.md("## 2. Phase diagram\nFigure 6 is drawn for finite K: choose a K to see it.")
    else:
        _point = ex.phase_point(config)
        _fig = xp.phase_figure(ex.phase_grid(config.support, config.noise_var / config.effective_task_var),
                               _point)
        _caveat = "" if _point["exact"] else (" The diagram assumes Σx = I and a subspace of equal variances; "
                                              "this setting is marked at its d/K and r/d only.")
        phase = mo.vstack([mo.md("## 2. Phase diagram (figure 6), the setting marked ★" + "\n\n" + _caveat),
                           mo.as_html(_fig)])
        plt.close(_fig)
    return (phase,)


@app.cell
def _(command, error, html, json, mo, theory):
    _shown = error if error is not None else json.dumps(theory, indent=2, ensure_ascii=False)
    command_panel = mo.vstack([
        mo.md("## 5. The same from the command line\nIts `--json` prints these numbers under \"theory\" "
              "(the searched ones once their search is done):"),
        mo.Html(f"<pre id='explore-command' style='white-space:pre-wrap'>{html.escape(command)}</pre>"),
        mo.Html(f"<pre id='explore-json' style='font-size:75%;white-space:pre-wrap'>{html.escape(_shown)}</pre>"),
    ])
    return (command_panel,)


@app.cell
def _(command_panel, mo, phase):
    mo.hstack([phase, command_panel], widths=[1, 1], align="start")
    return


@app.cell
def _(config, get_dynamics, html, mo, plt, xd):
    _have = get_dynamics()
    _head = mo.md("## 3. Meta-training dynamics: how it gets there (`paper_repro.py dynamics`)")
    if config is None:
        _body = mo.md("")
    elif not _have or _have[0] != config:
        _body = mo.md("pending… (computed in the background)")
    else:
        _fig = xd.dynamics_figure(_have[1])
        _lines = [f"{model}: {part.get('command', '')}\n    {part.get('note', '')}" for model, part in _have[1].items()]
        _body = mo.hstack([mo.as_html(_fig), mo.Html(f"<pre id='dynamics-commands' style='white-space:pre-wrap;"
                                                      f"font-size:80%'>{html.escape(chr(10).join(_lines))}</pre>")],
                          widths=[1, 1], align="start")
        plt.close(_fig)
    mo.vstack([_head, _body])
    return


@app.cell
def _(config, mo, plt, theory, xp):
    _head = mo.md("## 4. The adaptation rules side by side\nEach rule at its best for this setting (figure 11's "
                  "axis at one point): plain steps, a meta-learned step per parameter (Meta-SGD), a ridge inner "
                  "problem (iMAML), ANIL and depth-2 MAML at width h, the optimal preconditioner, and the Bayes floor "
                  "no rule that sees K points can beat. In-context learning by linear attention reaches P*'s loss "
                  "when its prompt length is the training one (`paper_repro.py in-context`).")
    if config is None or theory is None:
        _body = mo.md("")
    else:
        _fig = xp.rules_figure(theory, config.steps, config.width)
        _body = mo.as_html(_fig)
        plt.close(_fig)
    mo.vstack([_head, _body])
    return


if __name__ == "__main__":
    app.run()
