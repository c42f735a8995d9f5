"""The figures' units on Dask workers: every unit of every selected figure at once, gathered here.

``run_jobs`` submits each figure's units (their experiments' units; those its checkpoint already holds are
not resubmitted) to a ``dask.distributed.LocalCluster`` of ``workers`` one-thread processes, or to
the running scheduler at ``scheduler``. Results come back to this process as they finish
(``as_completed``): each is saved in its figure's checkpoint at once (atomically), and a figure
whose units are all done is assembled and written through its ``FigureJob`` — the same bytes as
the serial path, because every unit carries its own seeds and runs with ``threads`` torch threads.
An interruption (Ctrl-C) or a failed unit cancels what is still queued and closes the cluster;
the finished units stay in the checkpoints, so a rerun resumes.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path

import dask
from distributed import Client, LocalCluster, as_completed

from theory.ground.errors import UsageError


def run_unit_on_worker(unit: Callable[[], object], threads: int):
    """A unit as a worker runs it: with ``threads`` torch threads, as the serial path runs it."""
    import torch

    torch.set_num_threads(threads)
    return unit()


def connect(workers: int, scheduler: str | None) -> Client:
    """A client of the scheduler at ``scheduler``, or of a new LocalCluster of ``workers`` processes."""
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="20s")
        except (OSError, ValueError, TypeError) as err:
            raise UsageError(f"argument --scheduler: cannot reach {scheduler!r}: {err}") from None
        try:
            require_project(client, scheduler)
        except BaseException:
            client.close()
            raise
        return client
    dask_default = str(dask.config.get("distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_", default=""))
    # Dask also writes its pre-spawn values into this process's os.environ (they stay after a cluster closes), so
    # a value left by an earlier cluster here would reach the new workers anyway: drop it while they start
    left_over = (os.environ.pop("MALLOC_TRIM_THRESHOLD_")
                 if os.environ.get("MALLOC_TRIM_THRESHOLD_") == dask_default else None)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": worker_environment()}):
            # the scheduler's HTTP server (health, metrics; the dashboard where bokeh is installed) on a free port:
            # the default 8787 may be another cluster's, which would print a warning on every run
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                                   silence_logs=logging.ERROR)  # not the workers' routine warnings on closing
    finally:
        if left_over is not None:
            os.environ["MALLOC_TRIM_THRESHOLD_"] = left_over
    return Client(cluster, set_as_default=False)


PACKAGES = ("theory", "simulations", "figures")  # what the scheduler (it unpickles the task graph) and workers import


def require_project(client: Client, scheduler: str) -> None:
    """UsageError, one line naming the fix, unless the scheduler and every worker of ``client`` can import this
    repository's packages: Dask's scheduler unpickles each task (and with it the figures' unit classes), so a
    scheduler started without the repository on its path fails every task with a 40-line traceback."""
    def missing() -> list[str]:  # defined here, so pickled by value: runs where the repository is not importable
        import importlib.util

        return [name for name in PACKAGES if importlib.util.find_spec(name) is None]

    where = {"the scheduler": client.run_on_scheduler(missing), **client.run(missing)}
    lacking = {place: names for place, names in where.items() if names}
    if lacking:
        place, names = next(iter(lacking.items()))
        place = place if place == "the scheduler" else f"the worker at {place}"
        root = Path(__file__).resolve().parent.parent
        raise UsageError(f"argument --scheduler: {place} of {scheduler} cannot import {', '.join(names)}: start "
                         f"`dask scheduler` and every `dask worker` with PYTHONPATH={root} (a checkout of the "
                         "same commit; README, \"Every core, or a cluster\")")


def worker_environment() -> dict:
    """The environment Dask gives each new worker process, without its MALLOC_TRIM_THRESHOLD_.

    Dask sets MALLOC_TRIM_THRESHOLD_ = 64 KiB so that workers return freed memory to the OS at once. A
    meta-training step allocates and frees many mid-sized tensors, so with it nearly every allocation
    page-faults: a figure-7 unit took 19.6 s in a worker (8.8 s of it in the kernel, 2.8 million minor page
    faults) against 9.3 s (1.1 s, 0.33 million) with glibc's own adaptive threshold. The one-thread BLAS
    settings Dask also sets are kept.
    """
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", default={}) or {})
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    return environ


def run_jobs(jobs: list, workers: int, scheduler: str | None = None, threads: int = 1) -> dict[int, list[Path]]:
    """Compute the ``jobs`` (registry.FigureJob) on Dask workers; figure number -> the files written."""
    units = {job.number: job.units() for job in jobs}
    missing = {job.number: [key for key in units[job.number] if key not in job.checkpoint.done] for job in jobs}
    by_number = {job.number: job for job in jobs}
    written = {}
    for job in jobs:
        job.checkpoint.update(len(units[job.number]) - len(missing[job.number]))  # resumed units
        if not missing[job.number]:
            written[job.number] = _assemble(job, units[job.number])
    if not any(missing.values()):
        return dict(sorted(written.items()))
    client = connect(workers, scheduler)
    try:
        owner, run_id = {}, uuid.uuid4().hex[:8]  # unique task keys, should two runs share a scheduler
        for number, keys in missing.items():
            for key in keys:
                future = client.submit(run_unit_on_worker, units[number][key], threads, pure=False,
                                       key=f"figure{number}:{key}:{run_id}")
                owner[future] = (number, key)
        try:
            with client.as_current():  # as_completed finds its client here
                finished = as_completed(list(owner))
            for future in finished:
                number, key = owner[future]
                job = by_number[number]
                job.checkpoint.save(key, future.result())
                job.checkpoint.update(1)
                missing[number].remove(key)
                if not missing[number]:
                    written[number] = _assemble(job, units[number])
        except BaseException:  # Ctrl-C or a failed unit: drop the queue, keep the saved units
            client.cancel(list(owner))
            raise
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None and scheduler is None:
            cluster.close()
    return dict(sorted(written.items()))


def _assemble(job, keys) -> list[Path]:
    """Figure ``job`` from its finished units, written as the serial path writes it."""
    done = {key: job.checkpoint.done[key] for key in keys}
    return job.write(job.assemble(done))
