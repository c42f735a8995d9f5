#!/usr/bin/env python
"""Latency and memory of `explore --theory-only --json` in a fresh interpreter each time (issue 20's goals).

  python scripts/theory_latency_bench.py [--repeats N]

Two commands, each run N times (default 5) as a child process, wall clock from the spawn to its exit (the
interpreter's start and every import included) and the child's peak resident memory:

  default     paper_repro.py explore --theory-only --json                 goal ≤ 1 s
  million     paper_repro.py explore --theory-only --json --dim 1000000   goal ≤ 2 s and ≤ 500 MB

beside the bare interpreter (`python -c pass`, the floor of any command), measured in the same run, so the
ratios hold on a busy machine where the absolute times do not. It also checks what the goals rest on: the million
run prints the pre-adaptation loss 1, the shallow best (d + 1)/(K + d + 1) and P*'s 0.375, and neither run imports
torch. Prints one line per command and exits 1 if a median misses its goal (a report, not a test: these machines
are shared and noisy).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRAPPER = ("import resource, subprocess, sys, time\n"
           "start = time.perf_counter()\n"
           "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
           "wall = time.perf_counter() - start\n"
           "peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024\n"
           "print(wall, peak, done.returncode)\n"
           "sys.stderr.write(done.stdout)\n")
CASES = {"interpreter": ([sys.executable, "-c", "pass"], None, None),
         "default": ([sys.executable, "paper_repro.py", "explore", "--theory-only", "--json"], 1.0, None),
         "million": ([sys.executable, "paper_repro.py", "explore", "--theory-only", "--json", "--dim", "1000000"],
                     2.0, 500e6)}


def measure(argv: list[str]) -> tuple[float, float, str]:
    """(wall seconds, peak resident bytes, stdout) of one child run of ``argv``; the wrapper's own start excluded."""
    done = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, cwd=ROOT,
                          check=True)
    wall, peak, code = done.stdout.split()
    if code != "0":
        raise SystemExit(f"{' '.join(argv)} exited {code}")
    return float(wall), float(peak), done.stderr


def check_million(stdout: str) -> None:
    theory = json.loads(stdout)["theory"]
    d, k = 10**6, 5
    expected = {"pre_adaptation_loss": 1.0, "shallow_best_post_loss": (d + 1) / (k + d + 1),
                "preconditioned_best_post_loss": 0.375}
    for key, value in expected.items():
        if abs(theory[key] - value) > 1e-10 * value:
            raise SystemExit(f"million: {key} = {theory[key]!r}, not {value!r}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (the median is reported)")
    repeats = parser.parse_args().repeats
    if repeats < 1:
        parser.error(f"argument --repeats: {repeats} is out of range: an integer >= 1")
    probe = "import sys, paper_repro; paper_repro.main(sys.argv[1:]); print('torch' in sys.modules, file=sys.stderr)"
    for name in ("default", "million"):
        argv = [sys.executable, "-c", probe, *CASES[name][0][2:]]
        done = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, check=True)
        if done.stderr.strip().splitlines()[-1] != "False":
            raise SystemExit(f"{name}: torch was imported")
    results = {}
    for _ in range(repeats):  # interleaved: a busy spell slows every command alike
        for name, (argv, _, _) in CASES.items():
            wall, peak, stdout = measure(argv)
            results.setdefault(name, []).append((wall, peak))
            if name == "million":
                check_million(stdout)
    floor = statistics.median(w for w, _ in results["interpreter"])
    missed = False
    for name, (argv, wall_goal, memory_goal) in CASES.items():
        wall = statistics.median(w for w, _ in results[name])
        peak = max(p for _, p in results[name])
        line = (f"{name:12s} median {wall:6.3f} s over {repeats} runs ({wall / floor:5.1f}× the bare interpreter's "
                f"{floor:.3f} s), peak {peak / 1e6:6.1f} MB")
        if wall_goal is not None:
            ok = wall <= wall_goal and (memory_goal is None or peak <= memory_goal)
            missed |= not ok
            goal = f"≤ {wall_goal:g} s" + (f", ≤ {memory_goal / 1e6:.0f} MB" if memory_goal else "")
            line += f"   goal {goal}: {'met' if ok else 'MISSED'}"
        print(line + f"   [{' '.join(argv[1:])}]")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
