"""Sizes against the memory they need: a dense d × d float64 matrix costs 8d² bytes, and the closed forms hold a
few of them at once. ``require_square_matrices_fit`` refuses a dimension whose matrices cannot fit in the memory
this machine has available, before any is allocated (one line naming the option, both amounts and the largest d
that fits), instead of NumPy's MemoryError after the work has begun."""
from __future__ import annotations

import math
import os

from theory.ground.errors import ParameterError

MATRICES = 16  # d × d float64 matrices the theory may hold at once (covariances, their factors and products)


def available_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else the free physical pages; None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _size(n: float) -> str:
    for unit in ("bytes", "kB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.3g} {unit}" if unit != "bytes" else f"{int(n)} bytes"
        n /= 1000
    raise AssertionError("unreachable")


def require_square_matrices_fit(parameter: str, dim: int, matrices: int = MATRICES) -> int:
    """``dim``, or ParameterError naming ``parameter`` when ``matrices`` dense dim × dim float64 matrices would
    not fit in the memory available now."""
    available = available_bytes()
    needed = matrices * 8.0 * float(dim) ** 2
    if available is not None and needed > available:
        largest = int(math.sqrt(available / (8.0 * matrices)))
        raise ParameterError(parameter, dim, f"a d whose d × d matrices fit in memory: d = {dim} needs about "
                                             f"{_size(needed)} ({matrices} dense d × d float64 matrices), "
                                             f"{_size(available)} is available here (at most d ≈ {largest})")
    return dim


def require_vectors_fit(parameter: str, dim: int, vectors: int) -> int:
    """``dim``, or ParameterError naming ``parameter`` when ``vectors`` float64 vectors of length ``dim`` (the
    structured families' storage, theory.structured_family) would not fit in the memory available now."""
    available = available_bytes()
    needed = vectors * 8.0 * float(dim)
    if available is not None and needed > available:
        raise ParameterError(parameter, dim, f"a d whose length-d vectors fit in memory: d = {dim} needs about "
                                             f"{_size(needed)} ({vectors} float64 vectors of length d), "
                                             f"{_size(available)} is available here (at most d ≈ "
                                             f"{int(available / (8.0 * vectors))})")
    return dim
