#!/usr/bin/env bash
# Refresh requirements.lock, the exact environment the committed figures/generated/*.csv come from:
# every package of the loose spec requirements.txt and what it pulls in, at one version each, with the
# sha256 of every file pip may take. Compiled by pip-tools (pip's own resolver and configuration) for the
# Python running this script, on Linux x86_64 with torch's CPU build (2.13.0+cpu).
#
#   bash scripts/lock.sh [PYTHON]        (PYTHON defaults to python3; 3.11, as the CSVs are made with)
#
# Refreshing the lock changes the environment the numbers come from: regenerate the CSVs under it
# (python3 -m venv .venv && .venv/bin/pip install -r requirements.lock && .venv/bin/python paper_repro.py),
# then `paper_repro.py compare` says how far they moved; commit the lock and the CSVs together.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
"$PY" -m venv "$tools"
"$tools/bin/pip" install --quiet pip-tools==7.7.0
# --allow-unsafe: pin setuptools too (torch asks for it); --no-emit-*: no machine's own index or wheel folder
# in the file; --strip-extras: dask[distributed] is written as dask and distributed, each pinned.
"$tools/bin/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
  --no-emit-find-links --no-emit-trusted-host --output-file requirements.lock requirements.txt
echo "requirements.lock: $(grep -c '==' requirements.lock) packages pinned"
