"""scripts/paper_runs.py: the same runs as scripts/paper_runs.mk, computed on a Dask LocalCluster of 2
workers (2 processes in the slow test, 1 thread by default) into the same reports as one process computes,
reported runs not resubmitted."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulations.experiments.vision import run_vision

ROOT = Path(__file__).resolve().parent.parent
TIMINGS = ("train_seconds", "eval_seconds", "throughput_tasks_per_s")  # the only fields that may differ


def _script():
    spec = importlib.util.spec_from_file_location("paper_runs", ROOT / "scripts" / "paper_runs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_run_names_are_those_of_the_makefile(capsys):
    if shutil.which("make") is None:
        pytest.fail("make is needed to read scripts/paper_runs.mk")
    made = subprocess.run(["make", "-s", "-f", "scripts/paper_runs.mk", "list"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.split()
    assert _script().main(["--list"]) == 0
    assert capsys.readouterr().out.split() == made and len(made) == 36


def test_the_makefile_runs_each_configuration_of_the_grid(capsys):
    """paper_runs.mk runs `paper_repro.py vision $(paper_runs.py --command --only NAME …)`: those options parse to
    exactly the VisionConfig that paper_runs.py itself would run under that name."""
    import paper_repro

    module = _script()
    made = subprocess.run(["make", "-n", "-f", "scripts/paper_runs.mk", "DATA=/d", "cifarfs-5w5s-anil-linnet-d2"],
                          cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "paper_runs.py --command --only cifarfs-5w5s-anil-linnet-d2 --data-root /d" in made
    for name in ("cifarfs-5w5s-anil-linnet-d2", "omniglot-5w1s-maml-kfo-d4", "mini-imagenet-5w5s-maml-plain-d2"):
        assert module.main(["--command", "--only", name, "--data-root", "/d", "--out", "runs"]) == 0
        _, config, _ = paper_repro.parse(["vision", *capsys.readouterr().out.split()])
        expected = module.runs(module.PaperRunsConfig(data_root="/d", out="runs", only=(name,)))[name]
        assert config == expected, name


def test_bad_input_is_one_line_and_exit_2(capsys):
    for argv, flag in ((["--only", "nope"], "--only"), (["--workers", "0"], "--workers"),
                       (["--datasets", "mnist"], "--datasets")):
        assert _script().main(argv) == 2
        err = capsys.readouterr().err.strip().split("\n")
        assert len(err) == 1 and err[0].startswith(f"paper_runs.py: error: argument {flag}"), err


def _thread_cluster(workers: int, scheduler):
    """A LocalCluster of one worker thread in this process: the same submitting and gathering without
    starting and importing worker processes (one thread: run_vision seeds the global torch RNG, which
    two runs in one process would share)."""
    from distributed import Client, LocalCluster

    assert scheduler is None
    return Client(LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=":0"),
                  set_as_default=False)


@pytest.mark.parametrize("processes", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_dask_workers_write_the_reports_one_process_computes(tmp_path, capsys, monkeypatch, processes):
    """Two worker processes (slow: about a minute on 2 busy cores), or one thread in this process."""
    if not processes:
        import figures.cluster

        monkeypatch.setattr(figures.cluster, "connect", _thread_cluster)
    names = ["digits-5w1s-anil-plain-d2", "digits-5w1s-anil-kfo-d2"]  # ANIL: the cheapest runs
    argv = ["--datasets", "digits", "--only", ",".join(names), "--iterations", "1", "--eval-tasks", "4",
            "--device", "cpu", "--workers", "2", "--out", str(tmp_path / "runs")]
    script = _script()
    assert script.main(argv) == 0
    config = script.PaperRunsConfig(datasets=("digits",), only=tuple(names), iterations=1, eval_tasks=4,
                                    device="cpu", out=str(tmp_path / "alone"))
    for name, vision in script.runs(config).items():
        ours = json.loads((tmp_path / "runs" / f"{name}.json").read_text())
        alone = run_vision(vision, progress=False)
        for report in (ours, alone):
            report["config"].pop("checkpoint")
            for key in TIMINGS:
                report.pop(key)
        assert ours == alone, name
    capsys.readouterr()
    assert script.main(argv) == 0  # both reported: nothing is submitted again
    assert capsys.readouterr().out.startswith("0 run(s) to submit, 2 already reported")
