"""One module per figure: ``compute(config) -> results`` and ``plot(results, path)``; see registry."""
