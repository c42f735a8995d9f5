# Paper-scale few-shot vision runs behind the vision results figure (a GPU job: 60,000 meta-steps each).
# Usage: make -f scripts/paper_runs.mk DATA=/path/to/data [PY=.venv/bin/python] [DEVICE=cuda] all
#        make -f scripts/paper_runs.mk DATA=... omniglot-5w1s-maml-kfo-d4   (one run)
# Each run checkpoints to runs/<name>.pt every two minutes and resumes if restarted; results go to
# runs/<name>.json. The figure itself: python paper_repro.py --full --only 7 --data-root $(DATA).
# The same runs as Dask tasks (a LocalCluster here, or a cluster with --scheduler ADDRESS):
#        python scripts/paper_runs.py --data-root DATA [--workers N | --scheduler ADDRESS]
PY ?= .venv/bin/python
DEVICE ?= cuda
DATA ?= data
ITERATIONS ?= 60000
# The run grid is declared once, in simulations/experiments/vision_grid.py: scripts/paper_runs.py lists the
# runs and prints each one's `paper_repro.py vision` options.
RUNS := $(shell $(PY) scripts/paper_runs.py --list)

.PHONY: all list $(RUNS)
all: $(RUNS)
list:
	@printf '%s\n' $(RUNS)

$(RUNS):
	@mkdir -p runs
	$(PY) paper_repro.py vision $$($(PY) scripts/paper_runs.py --command --only $@ --data-root $(DATA) \
	  --iterations $(ITERATIONS) --device $(DEVICE) --out runs) --json > runs/$@.json
