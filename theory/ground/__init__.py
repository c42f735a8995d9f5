"""The ground floor: what every layer of the toolkit imports, and which imports nothing of the toolkit.

  errors      every error type, and the range checks that raise them (the command line maps each to one
              line, exit status 2)
  statistics  the statistics constants and the comparison rules of every check (Z_CHECK, Z_REPORT,
              IDENTITY_TOL, the interval and identity rules); the Monte-Carlo estimate itself
              (simulations.statistics.Estimate) is the engine's, on torch
  atomic_io   atomic file writes (temporary file in the same folder, then rename)
  options     command-line options derived from frozen config dataclasses

Imports go one way: ground ← theory ← engine (simulations) ← twins ← checks ← experiments ← figures ←
command line (paper_repro.py, scripts); tests/test_layout.py fails on any arrow the other way.
"""
