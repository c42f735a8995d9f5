#!/usr/bin/env python
"""The paper-scale vision runs of scripts/paper_runs.mk as Dask tasks, on a local cluster or an existing one.

  python scripts/paper_runs.py --list                                   the 36 run names (as `make … list`)
  python scripts/paper_runs.py --data-root DATA --workers 2             on a LocalCluster of 2 processes here
  python scripts/paper_runs.py --data-root DATA --scheduler tcp://HOST:8786   on a running Dask cluster

Each run is ``run_vision`` of its configuration (paper_runs.mk's settings: 5-way, 1 shot on Omniglot and 5 on
CIFAR-FS and mini-ImageNet, MAML/ANIL × plain/LinNet/KFO × 2/4 blocks) on one worker, checkpointing to
``<out>/<name>.pt`` and resuming from it if the run is submitted again (the folder must be shared with the
workers when they run on other machines). This process gathers the reports as they finish and writes each
to ``<out>/<name>.json`` atomically (the same JSON as ``paper_repro.py vision --json``); runs whose JSON
exists are not submitted again. A failed run is one line on stderr (exit status 1 at the end); the others
go on. With ``--device cuda`` every worker uses its first visible GPU: give each worker its own GPU (one
worker per GPU through dask-jobqueue, or dask-cuda's LocalCUDACluster behind ``--scheduler``).
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the toolkit, wherever this script is started from

from simulations.experiments.vision import VisionConfig, run_vision  # noqa: E402
from simulations.experiments.vision_grid import DEPTHS, METHODS, PAPER_DATASETS, REMEDIES, SHOTS  # noqa: E402
from simulations.vision.datasets import DATASETS  # noqa: E402
from theory.ground.atomic_io import atomic_write_bytes  # noqa: E402
from theory.ground.errors import ParameterError, require_int  # noqa: E402
from theory.ground.options import Threads, option  # noqa: E402

VARIANTS = {name.lower(): fields for name, fields in REMEDIES.items()}  # run names spell them in lower case


@dataclass(frozen=True)
class PaperRunsConfig(Threads):
    """Which paper runs, where their data and results live, and which Dask workers compute them."""

    data_root: str | None = option(None, "folder holding the datasets (as paper_runs.mk's DATA)")
    datasets: tuple[str, ...] = option(PAPER_DATASETS, "datasets to run", choices=DATASETS)
    only: tuple[str, ...] | None = option(None, "run names to submit (see --list; default: all)")
    iterations: int = option(60_000, "meta-steps per run (paper_runs.mk's ITERATIONS)")
    eval_tasks: int = option(600, "test episodes per run (the literature's 600)")
    device: str = option("cuda", "torch device of every run (paper_runs.mk's DEVICE)")
    out: str = option("runs", "folder of the checkpoints <name>.pt and the reports <name>.json", path="folder")
    workers: int = option(1, "processes of the LocalCluster started here (each computes one run at a time)")
    scheduler: str | None = option(None, "address of a running Dask scheduler (e.g. tcp://host:8786)")
    list: bool = option(False, "print the run names, one a line, and exit")
    command: bool = option(False, "print each selected run's `paper_repro.py vision` options, one run a line, and "
                                  "exit (what paper_runs.mk runs)")

    def __post_init__(self):
        super().__post_init__()
        require_int("workers", self.workers, 1)
        unknown = [] if self.only is None else sorted(set(self.only) - set(runs(replace(self, only=None))))
        if unknown:
            raise ParameterError("only", ",".join(unknown), "names printed by --list")


def runs(config: PaperRunsConfig) -> dict[str, VisionConfig]:
    """Run name -> its VisionConfig, in paper_runs.mk's order (dataset, method, variant, depth)."""
    out = {}
    for dataset in config.datasets:
        for method in METHODS:
            for variant, extra in VARIANTS.items():
                for depth in DEPTHS.values():
                    name = f"{dataset}-5w{SHOTS[dataset]}s-{method}-{variant}-d{depth}"
                    root = config.data_root if DATASETS[dataset].needs_root else None  # digits reads none
                    out[name] = VisionConfig(
                        dataset=dataset, data_root=root, ways=5, shots=SHOTS[dataset], method=method,
                        depth=depth, iterations=config.iterations, eval_tasks=config.eval_tasks,
                        device=config.device, checkpoint=str(Path(config.out) / f"{name}.pt"), **extra)
    return {n: c for n, c in out.items() if config.only is None or n in config.only}


def submit(config: PaperRunsConfig) -> int:
    """Compute the runs without a report yet on Dask workers, writing each report here; the exit status."""
    from figures.cluster import connect, run_unit_on_worker  # dask is imported only to submit

    folder = Path(config.out)
    pending = {n: c for n, c in runs(config).items() if not (folder / f"{n}.json").exists()}
    print(f"{len(pending)} run(s) to submit, {len(runs(config)) - len(pending)} already reported in {folder}")
    if not pending:
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    from distributed import as_completed

    client, failed, futures = connect(config.workers, config.scheduler), 0, {}
    try:
        futures = {client.submit(run_unit_on_worker, partial(run_vision, c, False), config.threads, pure=False,
                                 key=f"paper-run:{n}"): n for n, c in pending.items()}
        with client.as_current():
            finished = as_completed(list(futures))
        for future in finished:
            name = futures[future]
            try:
                report = future.result()
            except Exception as err:  # a missing dataset or a divergence: this run only
                failed += 1
                print(f"paper_runs.py: {name}: error: {type(err).__name__}: {err}", file=sys.stderr)
                continue
            atomic_write_bytes(folder / f"{name}.json", (json.dumps(report, indent=2) + "\n").encode())
            print(f"{name}: test accuracy {report['test_accuracy']:.4f} ± {report['ci95']:.4f}")
    except BaseException:
        client.cancel(list(futures))
        raise
    finally:
        cluster = client.cluster
        client.close()
        if cluster is not None and config.scheduler is None:
            cluster.close()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    import paper_repro

    try:
        (config,) = paper_repro.build_configs([PaperRunsConfig], sys.argv[1:] if argv is None else argv,
                                              "paper_runs.py", __doc__.split("\n")[0])
    except paper_repro.UsageError as err:
        print(f"paper_runs.py: error: {err}", file=sys.stderr)
        return 2
    if config.list:
        print("\n".join(runs(config)))
        return 0
    if config.command:
        print("\n".join(" ".join(vision_options(c)) for c in runs(config).values()))
        return 0
    return submit(config)


def vision_options(config: VisionConfig) -> list[str]:
    """The `paper_repro.py vision` options that give ``config`` (the fields that differ from their defaults)."""
    import dataclasses

    from theory.ground.options import flag_of

    out = []
    for field in dataclasses.fields(VisionConfig):
        value = getattr(config, field.name)
        if value == field.default:
            continue
        out += [flag_of(field)] if value is True else [flag_of(field), str(value)]
    return out


if __name__ == "__main__":
    sys.exit(main())
