"""The applications built on the engine (simulations/): each module turns one frozen config into a
report and formats it. ``paper_repro.py`` derives its subcommands' options from these configs
(theory.ground.options) and dispatches to them; nothing in the engine imports from here."""
