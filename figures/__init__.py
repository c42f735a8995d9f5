"""One module per figure: its Config (quick and full profiles), EXPERIMENT (the simulations/experiments module whose
``units`` and ``assemble`` make its numbers), COLUMNS (compare's rules), ``rows``, ``plot`` and ``caption``; the
unit protocol and the writing are figures.registry's."""
