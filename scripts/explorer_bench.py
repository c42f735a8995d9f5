#!/usr/bin/env python
"""Time the explorer's per-update compute, without the browser: what one move of a control costs (figures/explorer.py).

  python scripts/explorer_bench.py            median and worst of 50 updates at explore's default setting

One update is what the app recomputes when a control moves: the ExploreConfig from the controls, explore's closed
forms and the shallow loss curves of panel 1 (figures.explorer_compute.panel_one, its cache bypassed). The searched
half (ANIL's and depth-2's optimum, the Bayes floor) runs in a child process and is not part of an update. Pinned to
one core with one BLAS thread; the goal is at most 200 ms.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # one core, before numpy loads its BLAS
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the toolkit, wherever this script is started from

from figures import explorer_compute as ex  # noqa: E402

REPEATS = 50
GOAL_MS = 200.0


def update(controls: ex.Controls) -> dict:
    """One update of panel 1, uncached."""
    return ex.panel_one.__wrapped__(ex.config_of(controls))


def main() -> int:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    controls = ex.Controls()
    update(controls)  # warm: imports and the exact-arithmetic caches of theory/
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        update(controls)
        times.append(1e3 * (time.perf_counter() - start))
    median, worst = statistics.median(times), max(times)
    print(f"explorer per-update compute at the default setting, one core: median {median:.1f} ms, "
          f"worst {worst:.1f} ms over {REPEATS} updates (goal ≤ {GOAL_MS:.0f} ms)")
    return 0 if median <= GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
