"""Multi-process training through torch.distributed, as launched by ``torchrun``.

ganforge starts no processes of its own: ``torchrun --nproc-per-node K -m ganforge train ...``
(or a multi-node rendezvous) sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; the trainer then
joins the process group (NCCL on GPUs, gloo on CPUs), wraps both networks in
DistributedDataParallel, and splits every global batch evenly across ranks. All ranks draw the
same global batch indices and latents from the same seeded generators and each takes its slice,
so a K-process run sees exactly the samples of a 1-process run with the same ``train.batch_size``
(the *global* batch), and DDP's gradient averaging reproduces its mean gradients; learning rates
therefore need no rescaling. Rank 0 alone writes samples, logs and checkpoints.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import attrs
import torch
import torch.distributed as dist


@attrs.frozen(kw_only=True)
class DistributedContext:
    """This process's place in the job: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0

    @staticmethod
    def launched_as_writer() -> bool:
        """Whether this process is rank 0 of its launch (or not launched by ``torchrun``), read from the
        environment before any process group is joined: what may take a run directory's lock."""
        return int(os.environ.get("RANK", "0")) == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> DistributedContext:
        """Join the process group that ``torchrun`` describes in the environment, if any."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        return cls(rank=dist.get_rank(), world_size=dist.get_world_size(),
                   local_rank=int(os.environ.get("LOCAL_RANK", "0")))

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's contiguous slice of a global batch (the batch divides evenly)."""
        if not self.enabled:
            return batch
        n = batch.shape[0] // self.world_size
        return batch[self.rank * n:(self.rank + 1) * n]

    def all_gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's ``x`` concatenated along the batch, in rank order (a collective)."""
        if not self.enabled:
            return x
        parts = [torch.empty_like(x) for _ in range(self.world_size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    def any(self, flag: bool, device: torch.device) -> bool:
        """True on every rank when ``flag`` is true on any rank (a collective: call it on all ranks)."""
        if not self.enabled:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def gather(self, obj: object) -> list[object]:
        """Every rank's ``obj``, in rank order (a collective)."""
        if not self.enabled:
            return [obj]
        out: list[object] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()


@contextlib.contextmanager
def joined_for_the_command() -> Iterator[None]:
    """Leave, when the block ends normally, a process group that it joined: gloo's worker threads still
    alive at interpreter exit can abort a rank that has finished (SIGABRT, "terminate called without an
    active exception"), which torchrun reports as a failed job. A group joined before the block is the
    caller's and stays; after an error the group is left as it is, since leaving is a collective for
    NCCL and the other ranks may never reach it (torchrun ends them)."""
    joined_before = dist.is_available() and dist.is_initialized()
    yield
    if not joined_before and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
