#!/usr/bin/env bash
# The 2-process torchrun vision run N times in a row (default 20): prints each run's exit status and, at the end,
# how many exited 0. Every rank must leave the process group cleanly (issue 20: one rank once aborted at exit,
# "terminate called without an active exception", so torchrun exited 1 although training had finished).
#   scripts/torchrun_soak.sh [N] [LOG_DIR]      (from the repository root; about 7 s a run on 2 cores)
set -u
runs=${1:-20}
logs=${2:-$(mktemp -d)}
mkdir -p "$logs"
python=${PYTHON:-.venv/bin/python}
ok=0
for i in $(seq 1 "$runs"); do
    OMP_NUM_THREADS=1 "$python" -m torch.distributed.run --standalone --nproc_per_node 2 paper_repro.py vision \
        --dataset digits --ways 5 --shots 1 --iterations 30 --meta-batch 8 --eval-tasks 100 --device cpu --seed 3 \
        --json >"$logs/run$i.json" 2>"$logs/run$i.err"
    status=$?
    echo "run $i: exit $status"
    [ "$status" -eq 0 ] && ok=$((ok + 1))
done
echo "$ok of $runs runs exited 0 (logs in $logs)"
[ "$ok" -eq "$runs" ]
