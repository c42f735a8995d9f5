"""figures --workers / --scheduler (figures.cluster): every figure's units are picklable zero-argument callables,
tiny-profile figures computed on a 2-process Dask cluster write the serial run's CSV bytes, checks that share a
cached meta-training give the same numbers in different processes, an interrupted run keeps its finished units and
a rerun submits only the rest, and bad option combinations exit with status 2 and one line.
"""
from __future__ import annotations

import contextlib
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from distributed import Client, LocalCluster

import paper_repro
from figures import cluster as figures_cluster
from figures import fig4_theory_vs_simulation as fig4
from figures.checkpoint import UnitCheckpoint
from figures.registry import FIGURES, FiguresConfig, run, run_figure
from tests.test_figures import TINY

ROOT = Path(__file__).resolve().parent.parent
NUMBERS = (2, 8)  # tiny profiles with units of different kinds (two SGD paths; closed forms and meta-training)


def _tiny(mp: pytest.MonkeyPatch) -> None:
    for module, config in TINY.values():
        mp.setattr(module.Config, "quick", classmethod(lambda cls, c=config: c))


@pytest.fixture(scope="module")
def cluster():
    """Two one-thread worker processes, shared by the tests that pass --scheduler."""
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as local:
        yield local


@pytest.fixture(scope="module")
def serial(tmp_path_factory) -> dict[int, list]:
    """The tiny figures of NUMBERS computed one after another in this process: {number: [json, csv, pdf, png]}."""
    out = tmp_path_factory.mktemp("serial")
    with pytest.MonkeyPatch.context() as mp:
        _tiny(mp)
        return {n: run_figure(n, out=str(out)) for n in NUMBERS}


def _same_as_serial(written: dict, serial: dict) -> None:
    assert sorted(written) == sorted(serial)
    for n, paths in written.items():
        assert paths[1].read_bytes() == serial[n][1].read_bytes(), f"figure {n}: CSV"
        ours, theirs = json.loads(paths[0].read_text()), json.loads(serial[n][0].read_text())
        assert ours["results"] == theirs["results"] and ours["caption"] == theirs["caption"], f"figure {n}"
        assert paths[3].stat().st_size > 0 and not list(paths[0].parent.glob(".fig*.partial.json"))


@pytest.mark.parametrize("number", sorted(TINY))
def test_units_are_picklable(number):
    module, config = TINY[number]
    units = module.EXPERIMENT.units(config, 0)
    assert units
    for unit in units.values():
        assert callable(pickle.loads(pickle.dumps(unit)))  # plain pickle: no lambdas or closures


def test_local_cluster_writes_the_serial_bytes(serial, tmp_path, monkeypatch):
    """--workers 2 starts a LocalCluster; its figures equal the serial ones byte for byte (CSV)."""
    _tiny(monkeypatch)
    started = []
    real_connect = figures_cluster.connect
    monkeypatch.setattr(figures_cluster, "connect", lambda *a: started.append(a) or real_connect(*a))
    written = run(FiguresConfig(only=NUMBERS, out=str(tmp_path), workers=2))
    assert started == [(2, None)]
    _same_as_serial(written, serial)


def test_checks_sharing_a_cached_training_agree_across_processes(cluster):
    """Figure 4: two checks share an lru_cache'd meta-training in one process; on two workers each trains
    its own, with the same numbers."""
    config = TINY[4][1]
    units = fig4.EXPERIMENT.units(config, 0)
    keys = ["shallow_maml.meta_trained_init", "shallow_maml.meta_trained_post_loss"]
    here = [units[key]() for key in keys]
    with Client(cluster.scheduler_address) as client:
        addresses = sorted(client.scheduler_info()["workers"])
        assert len(addresses) == 2
        futures = [client.submit(figures_cluster.run_unit_on_worker, units[key], 1, pure=False, workers=[address])
                   for key, address in zip(keys, addresses)]
        there = client.gather(futures)
    assert there == here


def test_interrupted_run_resumes_with_the_rest(serial, cluster, tmp_path, monkeypatch):
    """Ctrl-C while gathering: the finished units stay in the checkpoint; the rerun (--scheduler) submits
    only the others and writes the serial bytes."""
    _tiny(monkeypatch)
    config = FiguresConfig(only=(8,), out=str(tmp_path), scheduler=cluster.scheduler_address)
    real_save, saved = UnitCheckpoint.save, []

    def interrupt_after_three(self, key, value):
        if len(saved) == 3:
            raise KeyboardInterrupt
        saved.append(key)
        real_save(self, key, value)

    monkeypatch.setattr(UnitCheckpoint, "save", interrupt_after_three)
    with pytest.raises(KeyboardInterrupt):
        run(config)
    monkeypatch.setattr(UnitCheckpoint, "save", real_save)
    assert len(json.loads(next(tmp_path.glob(".fig8_*.partial.json")).read_text())["units"]) == 3
    assert not list(tmp_path.glob("fig8_*.csv"))

    submitted, real_submit = [], Client.submit

    def counting_submit(self, *args, **kwargs):
        submitted.append(kwargs["key"])
        return real_submit(self, *args, **kwargs)

    monkeypatch.setattr(Client, "submit", counting_submit)
    _same_as_serial(run(config), {8: serial[8]})
    assert len(submitted) == len(TINY[8][0].EXPERIMENT.units(TINY[8][1], 0)) - 3


@pytest.mark.parametrize(("argv", "flag", "text"), [
    (["--scheduler", "tcp://127.0.0.1:8786", "--workers", "3"], "--scheduler", "not allowed with --workers 3"),
    (["--workers", "0"], "--workers", ">= 1"),
])
def test_bad_worker_options_exit_2_with_one_line(argv, flag, text, capsys):
    assert paper_repro.main(["--only", "6", *argv]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith(f"paper_repro.py: error: argument {flag}: ")
    assert text in err, err


def test_workers_default_to_the_cores(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 5)
    assert FiguresConfig().local_workers == 5 and FiguresConfig(workers=1).local_workers == 1
    assert set(FIGURES) == set(TINY)


def _worker_malloc_setting():
    import os

    return os.environ.get("MALLOC_TRIM_THRESHOLD_"), os.environ.get("OMP_NUM_THREADS")


def test_local_workers_keep_glibc_malloc_trimming():
    """Dask's 64 KiB MALLOC_TRIM_THRESHOLD_ makes every mid-sized tensor allocation page-fault (a figure-7 unit ran
    twice as long); connect() starts its workers without it, and with one BLAS/OpenMP thread as Dask does."""
    client = figures_cluster.connect(1, None)
    try:
        trim, omp = client.submit(_worker_malloc_setting, pure=False).result()
    finally:
        local = client.cluster
        client.close()
        local.close()
    assert trim is None and omp == "1"


def test_local_cluster_leaves_port_8787_alone():
    """The scheduler's HTTP server takes a free port: with 8787 taken (another Dask cluster's dashboard, say)
    connect() starts without the "Port 8787 is already in use" warning."""
    import socket
    import warnings

    holder = socket.socket()
    try:
        holder.bind(("127.0.0.1", 8787))
        holder.listen()
    except OSError:  # someone else holds it already: the situation under test
        pass
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            client = figures_cluster.connect(1, None)
        local = client.cluster
        client.close()
        local.close()
    finally:
        holder.close()


# -- an existing cluster, started as the README says: `dask scheduler` and `dask worker` as their own processes ----
def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def _dask_cluster(cwd: Path, pythonpath: str | None, workers: int):
    """`dask scheduler` and `dask worker ADDRESS --nthreads 1 --nworkers N` as separate processes started in
    ``cwd`` (with PYTHONPATH set or not, as a user would), their address once every worker has joined."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    if pythonpath is not None:
        env["PYTHONPATH"] = pythonpath
    dask = [str(Path(sys.executable).parent / "dask")]  # the venv's command line, as a user runs it
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = [subprocess.Popen([*dask, "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                                 "--no-dashboard"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)]
    try:
        started.append(subprocess.Popen([*dask, "worker", address, "--nthreads", "1", "--nworkers", str(workers),
                                         "--no-dashboard"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL))
        with Client(address, timeout="30s") as client:
            client.wait_for_workers(workers, timeout=60)
        yield address
    finally:
        for process in reversed(started):  # the workers first: they would try to reconnect to a closed scheduler
            process.terminate()
        for process in reversed(started):
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_an_existing_cluster_started_as_the_readme_says_writes_the_serial_bytes(serial, tmp_path, monkeypatch):
    """README's commands (PYTHONPATH=<repository> for `dask scheduler` and `dask worker`, started elsewhere than the
    repository): figure 8's tiny profile through --scheduler equals the serial run byte for byte (CSV)."""
    _tiny(monkeypatch)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with _dask_cluster(elsewhere, str(ROOT), workers=2) as address:
        written = run(FiguresConfig(only=(8,), out=str(tmp_path / "out"), scheduler=address))
    _same_as_serial(written, {8: serial[8]})


def test_a_cluster_that_cannot_import_the_repository_is_one_line(tmp_path, capsys):
    """Without PYTHONPATH the scheduler cannot unpickle a unit (ModuleNotFoundError: figures): one line naming the fix,
    exit status 2, before any unit is submitted, and nothing written."""
    with _dask_cluster(tmp_path, None, workers=1) as address:
        assert paper_repro.main(["--only", "6", "--out", str(tmp_path / "out"), "--scheduler", address]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1, err
    assert err.startswith(f"paper_repro.py: error: argument --scheduler: the scheduler of {address} cannot import "
                          "theory, simulations, figures: start `dask scheduler` and every `dask worker` with "
                          f"PYTHONPATH={ROOT}"), err
    assert not (tmp_path / "out").exists()
