#!/usr/bin/env bash
# GPU checks, for a CUDA machine: the GPU-marked tests, then a short meta-training of MAML and
# MAML+KFO on the bundled digits data with throughput and peak memory, a data-parallel torchrun vision run
# over nccl (1 process, and one per GPU when there are several), the conv-net benchmark, and the time and
# peak-memory cost of a MAML+KFO meta-step on the deep linear chain.
# Usage: bash scripts/gpu_check.sh [PYTHON]   (PYTHON defaults to .venv/bin/python, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${1:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONUNBUFFERED=1
"$PY" - <<'PYEOF'
import torch
assert torch.cuda.is_available(), "no CUDA device: these checks need a GPU"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, device {torch.cuda.get_device_name(0)}")
PYEOF
echo "== GPU-marked tests"
"$PY" -m pytest -q -m gpu
for extra in "" "--kfo"; do
  echo "== digits 5-way 1-shot MAML ${extra:-(plain)} on cuda"
  "$PY" - "$extra" <<'PYEOF'
import json, sys, time, torch
from simulations.experiments.vision import VisionConfig, run_vision
torch.cuda.reset_peak_memory_stats()
config = VisionConfig(dataset="digits", ways=5, shots=1, method="maml", kfo=sys.argv[1] == "--kfo",
                      iterations=300, meta_batch=32, eval_tasks=600, device="cuda", validation_tasks=0)
report = run_vision(config, progress=False)
print(json.dumps({"kfo": config.kfo, "test_accuracy": report["test_accuracy"], "ci95": report["ci95"],
                  "throughput_tasks_per_s": report["throughput_tasks_per_s"],
                  "train_seconds": report["train_seconds"],
                  "peak_memory_mib": torch.cuda.max_memory_allocated() / 2**20}))
PYEOF
done
echo "== data-parallel vision over nccl: torchrun, digits 5-way 1-shot MAML (written without a GPU to test it on)"
gpus=$("$PY" -c "import torch, torch.distributed as d; print(torch.cuda.device_count() if d.is_nccl_available() else 0)")
ranks="1"
if [ "$gpus" -ge 2 ]; then ranks="1 $gpus"; fi
if [ "$gpus" -eq 0 ]; then ranks=""; echo "skipped: this torch has no nccl backend"; fi
for nproc in $ranks; do
  out=$(mktemp)
  if ! "$PY" -m torch.distributed.run --standalone --nproc_per_node "$nproc" paper_repro.py vision --dataset digits \
       --ways 5 --shots 1 --iterations 50 --meta-batch $((8 * nproc)) --eval-tasks 100 --validation-tasks 0 \
       --device cuda --json > "$out"; then
    echo "FAILED: torchrun --nproc_per_node $nproc paper_repro.py vision --device cuda (nccl)"; rm -f "$out"; exit 1
  fi
  "$PY" - "$out" <<'PYEOF'
import json, sys
report = json.load(open(sys.argv[1]))
keys = ("processes", "test_accuracy", "ci95", "throughput_tasks_per_s", "train_seconds")
print(json.dumps({k: report[k] for k in keys}))
PYEOF
  rm -f "$out"
done
echo "== conv-net benchmark on cuda (batched vs per-task loop)"
"$PY" - <<'PYEOF'
from simulations.experiments.vision_benchmark import benchmark_vision, format_vision_benchmark
print(format_vision_benchmark(benchmark_vision(device="cuda", iterations=10)))
PYEOF
echo "== MAML+KFO meta-step cost on cuda (deep linear chain, T = 32, d = 100, depth 3, width 64)"
"$PY" - <<'PYEOF'
from simulations.experiments.kfo_benchmark import benchmark_kfo_cost, format_kfo_cost
print(format_kfo_cost(benchmark_kfo_cost(device="cuda", iterations=20)))
PYEOF
