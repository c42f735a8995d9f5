"""Data-parallel vision (simulations.vision.distributed): the ranks' episode shares make up the
one-process meta-batch, batch norm is per episode (so splitting episodes changes no episode's
numbers), a 2-process gloo torchrun run resumed from a one-process checkpoint trains the same
parameters and reports the same accuracies as one process, one process resumes the 2-process
checkpoint, and a meta-batch the processes cannot share equally is one line, exit 2."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from torch.func import functional_call

import paper_repro
from simulations.experiments.vision import VisionConfig, build_model, run_vision
from simulations.maml import InnerLoop, initial_params, task_losses
from simulations.tasks import TaskBatch
from simulations.vision import distributed
from simulations.vision.datasets import load_pool
from simulations.vision.distributed import Ranks, ranks_from_environment
from simulations.vision.episodes import sample_episodes
from tests.helpers import IDENTITY_TOL, assert_close
from theory.ground.errors import ParameterError, UsageError

ROOT = Path(__file__).resolve().parent.parent
FLOAT32_TOL = 1e-5  # relative: two float32 summation orders of the same meta-gradient, a few Adam steps
SETTINGS = {"dataset": "digits", "ways": 3, "shots": 1, "query": 2, "depth": 2, "width": 8, "meta_batch": 4,
            "eval_tasks": 10, "validation_tasks": 3, "validate_every": 2, "checkpoint_every_seconds": 1e9}


def _config(path: Path, iterations: int) -> VisionConfig:
    return VisionConfig(**SETTINGS, iterations=iterations, checkpoint=str(path))


def _argv(config: VisionConfig) -> list[str]:
    flag = {"checkpoint_every_seconds": "--checkpoint-every"}
    return [a for k, v in {**SETTINGS, "iterations": config.iterations, "checkpoint": config.checkpoint}.items()
            for a in (flag.get(k, "--" + k.replace("_", "-")), str(v))]


# -- the parts --------------------------------------------------------------------------------------
def test_the_ranks_shares_are_the_one_process_meta_batch():
    pool = load_pool("digits", "train")
    whole = sample_episodes(pool, 5, 1, 3, 7, torch.Generator().manual_seed(4))
    for world in (1, 2, 3, 7):
        gens = [torch.Generator().manual_seed(4) for _ in range(world)]
        parts = [sample_episodes(pool, 5, 1, 3, 7, g, Ranks(world, r, r).share(7)) for r, g in enumerate(gens)]
        assert sum(p.n_tasks for p in parts) == 7 and max(p.n_tasks for p in parts) - min(p.n_tasks for p in parts) <= 1
        for name in ("x_support", "y_support", "x_query", "y_query"):
            assert torch.equal(torch.cat([getattr(p, name) for p in parts]), getattr(whole, name)), (world, name)
        assert all(torch.equal(g.get_state(), _advanced(pool)) for g in gens)  # every generator in step
    with pytest.raises(ParameterError, match="keep"):
        sample_episodes(pool, 5, 1, 3, 7, torch.Generator(), range(5, 9))


def _advanced(pool) -> torch.Tensor:
    gen = torch.Generator().manual_seed(4)
    sample_episodes(pool, 5, 1, 3, 7, gen)
    return gen.get_state()


def test_batch_norm_is_per_episode_so_an_episode_ignores_its_batch_mates():
    """task_losses of a slice of episodes = that slice of task_losses of all (float64): batch
    statistics are taken per episode, so a rank's share is scored as in the whole meta-batch."""
    torch.manual_seed(0)
    pool = load_pool("digits", "train")
    batch = sample_episodes(pool, 3, 2, 2, 4, torch.Generator().manual_seed(1)).to(dtype=torch.float64)
    model = build_model(VisionConfig(**{**SETTINGS, "ways": 3}), pool.image_shape).double()
    with torch.no_grad():
        for block in model.blocks:  # distinct γ, β so that the statistics matter
            block.norm.weight.uniform_(0.5, 1.5)
            block.norm.bias.normal_()
    params, inner = initial_params(model), InnerLoop(0.4, 2, False, "all", "cross_entropy")
    whole = task_losses(model, params, batch, inner, with_accuracy=True)
    for part in (range(0, 1), range(1, 4), range(2, 3)):
        sliced = TaskBatch(*(t[part.start:part.stop] for t in (batch.x_support, batch.y_support,
                                                                   batch.x_query, batch.y_query)))
        alone = task_losses(model, params, sliced, inner, with_accuracy=True)
        for key in whole:
            assert_close(alone[key].detach(), whole[key][part.start:part.stop].detach(), IDENTITY_TOL, key)


def test_ranks_from_the_torchrun_environment():
    assert ranks_from_environment({}) is None
    ranks = ranks_from_environment({"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"})
    assert ranks == Ranks(4, 3, 1) and not ranks.is_main and ranks.share(8) == range(6, 8)
    assert ranks.device("cuda") == "cuda:1" and ranks.device("cpu") == "cpu"
    with pytest.raises(ParameterError, match="device"):
        ranks.device("cuda:0")
    for bad in ({"WORLD_SIZE": "2"}, {"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"},
                {"WORLD_SIZE": "x", "RANK": "0"}):
        with pytest.raises(UsageError, match="torchrun environment"):
            ranks_from_environment(bad)


def test_a_meta_batch_the_processes_cannot_share_is_one_line_and_exit_2(capsys, monkeypatch):
    for name, value in {"WORLD_SIZE": "3", "RANK": "0", "LOCAL_RANK": "0"}.items():
        monkeypatch.setenv(name, value)
    code = paper_repro.main(["vision", "--meta-batch", "4", "--iterations", "1"])
    err = [line for line in capsys.readouterr().err.split("\n") if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("paper_repro.py: error: argument --meta-batch: 4") and "3 torchrun processes" in err[0]


def test_a_bad_checkpoint_read_on_rank_0_is_raised_on_every_rank(tmp_path):
    """read_on_main sends rank 0's ParameterError to the others (here a 1-process gloo group)."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        (tmp_path / "bad.pt").write_bytes(b"not a checkpoint")
        with pytest.raises(ParameterError, match="checkpoint"):
            run_vision(_config(tmp_path / "bad.pt", 2), progress=False, ranks=Ranks(1, 0, 0))
        assert distributed.read_on_main(lambda: {"a": 1}, Ranks(1, 0, 0)) == {"a": 1}
    finally:
        dist.destroy_process_group()


# -- two processes against one ----------------------------------------------------------------------
def _same_network(a: dict, b: dict, what: str) -> None:
    """θ equal to float32 tolerance, except the conv biases: batch norm subtracts them, so their exact
    meta-gradient is 0 and Adam turns the round-off into ±meta_lr steps; they are held to the function."""
    for name in a:
        if not (name.startswith("blocks.") and name.endswith(".conv.bias")):
            assert_close(a[name], b[name], FLOAT32_TOL, f"{what}: {name}")
    model = build_model(VisionConfig(**SETTINGS), (1, 8, 8))
    x = torch.cat(load_pool("digits", "test").images[::4])[:200]  # (200, 1, 8, 8) test images
    logits = [functional_call(model, params, (x,)) for params in (a, b)]  # (200, ways)
    assert_close(logits[0], logits[1], FLOAT32_TOL, f"{what}: logits")


def test_two_gloo_processes_train_what_one_process_trains(tmp_path):
    one = run_vision(_config(tmp_path / "one.pt", 4), progress=False)  # the one-process reference
    run_vision(_config(tmp_path / "two.pt", 4), progress=False, _stop_after=2)  # resumed below by 2 processes
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               "paper_repro.py", "vision", *_argv(_config(tmp_path / "two.pt", 4)), "--json"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(done.stdout)  # rank 0's report alone: one JSON object
    assert two["processes"] == 2 and two["resumed_from"] == 2
    assert two["test_accuracy"] == one["test_accuracy"] and two["test_tasks"] == one["test_tasks"] == 10
    assert two["history"]["validation"] == one["history"]["validation"]
    assert_close(torch.tensor(two["history"]["meta_loss"]), torch.tensor(one["history"]["meta_loss"]), FLOAT32_TOL,
                 "meta-losses")
    a, b = (torch.load(tmp_path / n, weights_only=True) for n in ("one.pt", "two.pt"))
    assert a["iteration"] == b["iteration"] == 4 and torch.equal(a["generator"], b["generator"])
    _same_network(a["params"], b["params"], "2 processes vs 1")
    shutil.copy(tmp_path / "two.pt", tmp_path / "two_then_one.pt")  # one process resumes the 2-process run
    resumed = run_vision(_config(tmp_path / "two_then_one.pt", 6), progress=False)
    straight = run_vision(_config(tmp_path / "one.pt", 6), progress=False)
    assert resumed["resumed_from"] == 4 and resumed["test_accuracy"] == straight["test_accuracy"]
    a, b = (torch.load(tmp_path / n, weights_only=True) for n in ("one.pt", "two_then_one.pt"))
    _same_network(a["params"], b["params"], "1 process resuming 2")
