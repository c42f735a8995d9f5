"""Measurement shared by the benchmarks: interleaved step timing and the peak memory of one step.

Timing: every repetition runs every path once, in rotating order, after WARMUP untimed steps,
so drift and position effects cancel; ratios are taken per repetition, then the median.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Callable, Iterator

import torch

WARMUP = 3  # untimed steps per path: first calls allocate buffers and warm caches
MEMORY_METHOD = {
    "cpu": "torch.profiler(profile_memory=True) records each CPU allocation (+bytes) and free (−bytes) "
           "during one step; the peak of their running sum in time order is the step's peak extra "
           "allocation. Frees of blocks allocated before the step (last step's gradients) are not "
           "recorded, so it counts the step's own allocations: an upper bound on the rise in live memory.",
    "cuda": "torch.cuda.max_memory_allocated during one step (peak stats reset before it), minus "
            "torch.cuda.memory_allocated when it began."}


def time_interleaved(steps: dict[str, Callable[[], float]], iterations: int) -> tuple[dict, dict]:
    """Per-path step times (s) and meta-losses; each repetition runs every path, order rotating."""
    names = list(steps)
    for _ in range(WARMUP):
        for name in names:
            steps[name]()
    times = {n: [] for n in names}
    losses = {n: [] for n in names}
    for i in range(iterations):
        for name in names[i % len(names):] + names[:i % len(names)]:
            start = time.perf_counter()
            losses[name].append(steps[name]())
            times[name].append(time.perf_counter() - start)
    return times, losses


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Send file descriptor 2 to /dev/null: the profiler's C++ side logs every start and stop
    ("USDT: ... profiler_start") and warns about blocks allocated before it began, straight to fd 2."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def peak_step_bytes(step: Callable[[], float], device: torch.device) -> int:
    """Peak bytes allocated while ``step`` runs above those allocated when it began (MEMORY_METHOD)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    cpu = [torch.profiler.ProfilerActivity.CPU]
    with quiet_stderr(), torch.profiler.profile(activities=cpu, profile_memory=True) as prof:
        step()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    return max(itertools.accumulate((e.nbytes() for e in events), initial=0))
