"""Data-parallel few-shot meta-training across torchrun processes: each rank adapts its share of a meta-batch.

  ∇θ mean_τ L_τ(θ'_τ) = Σ_r ∇θ [ (1/T) Σ_{τ ∈ share_r} L_τ(θ'_τ) ]      (T episodes; share_r: rank r's slice)

Every rank draws the randomness of the whole meta-batch from the same generator but builds only the
episodes of its share (``keep`` of simulations.vision.episodes.sample_episodes), so the shares of the
ranks together are the one-process meta-batch and every rank's generator stays in step. A rank's loss
is its episodes' query losses summed and divided by T; one all-reduce (sum) of the flattened gradients
(with the loss and the accuracy appended) gives every rank the one-process meta-gradient, up to the
order of float summation, and the identical Adam steps keep θ (and φ) identical on every rank.
Batch normalisation takes its statistics per episode (simulations.vision.convnet, vmapped per task:
the support set while adapting, the query set when scoring), so no episode's numbers depend on which
other episodes share its rank. Evaluation is split the same way: each rank adapts its share of every
chunk of test episodes and one all-reduce assembles the per-episode accuracies on every rank.

Launch: ``torchrun --nproc_per_node N paper_repro.py vision …`` (torchrun sets WORLD_SIZE, RANK,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Backend gloo on the CPU, nccl on CUDA, where rank r takes
cuda:LOCAL_RANK. The meta-batch must divide by WORLD_SIZE.
"""
from __future__ import annotations

import gc
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from theory.ground.errors import ParameterError, UsageError


@dataclass(frozen=True)
class Ranks:
    """This process's place among the torchrun processes."""

    world: int  # WORLD_SIZE: processes in all
    rank: int  # RANK: 0 evaluates nothing alone, but alone prints and writes
    local_rank: int  # LOCAL_RANK: index on this node, hence the GPU cuda:LOCAL_RANK

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, n_tasks: int) -> range:
        """This rank's contiguous slice of 0..n_tasks−1; sizes differ by at most one, equal when world | n_tasks."""
        return range(self.rank * n_tasks // self.world, (self.rank + 1) * n_tasks // self.world)

    def device(self, name: str) -> str:
        """The torch device of this rank: 'cuda' is cuda:LOCAL_RANK; CPU devices as given."""
        device = torch.device(name)
        if device.type != "cuda":
            return name
        if device.index is not None:
            raise ParameterError("device", name, "'cuda' under torchrun (each process takes cuda:LOCAL_RANK) or 'cpu'")
        return f"cuda:{self.local_rank}"

    def require_divides(self, meta_batch: int) -> None:
        """ParameterError naming meta_batch unless the world size divides it (equal shares)."""
        if meta_batch % self.world:
            raise ParameterError("meta_batch", meta_batch,
                                 f"a multiple of the {self.world} torchrun processes (WORLD_SIZE), so every "
                                 "process adapts an equal share of each meta-batch")


def ranks_from_environment(environ: Mapping[str, str] = os.environ) -> Ranks | None:
    """Ranks from torchrun's WORLD_SIZE, RANK and LOCAL_RANK; None when WORLD_SIZE is unset (one plain process)."""
    if "WORLD_SIZE" not in environ:
        return None
    try:
        world, rank = int(environ["WORLD_SIZE"]), int(environ["RANK"])
        local_rank = int(environ.get("LOCAL_RANK", rank))
    except (KeyError, ValueError):
        raise UsageError("torchrun environment: WORLD_SIZE is set but RANK or LOCAL_RANK is missing or not an "
                         "integer; launch with torchrun --nproc_per_node N paper_repro.py vision …") from None
    if not (world >= 1 and 0 <= rank < world and local_rank >= 0):
        raise UsageError(f"torchrun environment: RANK={rank}, LOCAL_RANK={local_rank} do not fit WORLD_SIZE={world}")
    return Ranks(world, rank, local_rank)


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[str]:
    """The default process group (gloo on the CPU, nccl on CUDA) for the duration; yields the backend.

    Leaving it, every rank waits for the others (a barrier: no rank closes its connections while another still
    sends; not after an error, where it would wait in vain), destroys the group (its backend's threads joined) and
    collects the garbage, so that nothing of the group is left for the interpreter's exit to tear down: a group
    object freed only then, with its C++ threads, can abort the process ("terminate called without an active
    exception", SIGABRT) after the work is done, and torchrun then reports a failed run."""
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world)  # MASTER_ADDR/PORT from torchrun
    try:
        yield backend
        dist.barrier()
    finally:
        dist.destroy_process_group()
        gc.collect()  # the group's last references (a work object, a frame of an error) freed now, not at exit


def all_reduce_meta_gradients(out: dict[str, torch.Tensor], meta_batch: int,
                              params: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Backward this rank's Σ_{τ∈share} L_τ / T, then sum the gradients over ranks in one all-reduce.

    ``out``: task_losses of this rank's episodes ('post_loss', 'post_accuracy', each (T/world,)).
    Afterwards every ``params`` gradient is the one-process meta-gradient; returns the meta-batch's
    mean query loss and mean accuracy (scalars, the same on every rank).
    """
    loss = out["post_loss"].sum() / meta_batch  # this rank's part of mean_τ L_τ
    loss.backward()
    with_grad = [p for p in params if p.grad is not None]  # None alike on every rank (same graph)
    flat = torch.cat([*(p.grad.reshape(-1) for p in with_grad), loss.detach().reshape(1),
                      (out["post_accuracy"].sum() / meta_batch).detach().reshape(1)])  # (parameters + 2,)
    dist.all_reduce(flat)  # sum over ranks
    offset = 0
    for p in with_grad:
        p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
        offset += p.numel()
    return flat[-2], flat[-1]


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Σ over ranks of ``values`` (on this rank's device), on every rank: with disjoint nonzero slices
    (each rank's episodes, zeros elsewhere) it assembles the whole vector, exactly."""
    dist.all_reduce(values)
    return values


def read_on_main(read: Callable[[], object], ranks: Ranks):
    """``read()`` called on rank 0 alone (a checkpoint), its result on every rank; its ParameterError,
    if it raises one, raised on every rank (so no rank waits for the others in vain)."""
    result = None
    if ranks.is_main:
        try:
            result = read()
        except ParameterError as err:
            result = ParameterError.__name__, err.parameter, err.value, err.valid
    box = [result]
    dist.broadcast_object_list(box, src=0)  # pickled; nccl sends it through the current CUDA device
    if isinstance(box[0], tuple) and box[0][:1] == (ParameterError.__name__,):
        raise ParameterError(*box[0][1:])
    return box[0]
