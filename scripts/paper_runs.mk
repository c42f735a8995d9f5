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
DATASETS := omniglot cifarfs mini-imagenet
METHODS := maml anil
VARIANTS := plain linnet kfo
DEPTHS := 2 4

flags_plain :=
flags_linnet := --linnet-layers 2
flags_kfo := --kfo
shots_omniglot := 1
shots_cifarfs := 5
shots_mini-imagenet := 5

RUNS := $(foreach d,$(DATASETS),$(foreach m,$(METHODS),$(foreach v,$(VARIANTS),$(foreach L,$(DEPTHS),$(d)-5w$(shots_$(d))s-$(m)-$(v)-d$(L)))))

.PHONY: all list $(RUNS)
all: $(RUNS)
list:
	@printf '%s\n' $(RUNS)

$(RUNS):
	@mkdir -p runs
	$(PY) paper_repro.py vision --dataset $(word 1,$(subst -5w, ,$@)) --data-root $(DATA) --ways 5 \
	  --shots $(shots_$(word 1,$(subst -5w, ,$@))) --method $(word 3,$(subst -, ,$(subst mini-imagenet,mini_imagenet,$@))) \
	  $(flags_$(word 4,$(subst -, ,$(subst mini-imagenet,mini_imagenet,$@)))) \
	  --depth $(subst d,,$(word 5,$(subst -, ,$(subst mini-imagenet,mini_imagenet,$@)))) \
	  --iterations $(ITERATIONS) --device $(DEVICE) --checkpoint runs/$@.pt --json > runs/$@.json
