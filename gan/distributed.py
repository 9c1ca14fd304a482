"""The processes of one training run, and the optimiser step they share.

``torchrun --nproc_per_node N -m gan.train ...`` (or ``-m gan.upscale train``) starts N
processes that split each batch. :func:`setup_distributed` joins the process group torchrun
set up (gloo on CPU, NCCL on GPUs) and picks the device; :func:`broadcast_weights` starts every
process from rank 0's weights; :func:`optimizer_step` backpropagates, averages the gradients
of all processes (:func:`sync_gradients`) and steps, and stops with :class:`TrainingDiverged`
on a NaN or infinite loss. One process is rank 0 of 1 and skips every collective.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from neuropaint.validate import NeuropaintError

__all__ = ["Dist", "TrainingDiverged", "broadcast_weights", "optimizer_step",
           "setup_distributed", "sync_gradients"]


class TrainingDiverged(NeuropaintError):
    """A loss became NaN or infinite; the last good snapshot is kept."""


@dataclass
class Dist:
    """This process's place in a distributed run (one process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def main(self) -> bool:
        return self.rank == 0


def setup_distributed(device: str) -> Dist:
    """Join the process group torchrun set up, if any; pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        torch.distributed.init_process_group(backend=backend)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    return Dist(rank=rank, world=world, device=dev)


def sync_gradients(net: torch.nn.Module, dist: Dist) -> None:
    """Average the gradients of all processes (one all_reduce of one flat buffer)."""
    if dist.world == 1:
        return
    params = [p for p in net.parameters() if p.grad is not None]
    if not params:
        return
    flat = torch.cat([p.grad.flatten() for p in params])
    torch.distributed.all_reduce(flat)
    flat /= dist.world
    torch.nan_to_num_(flat, nan=0.0, posinf=1e5, neginf=-1e5)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p.grad))
        offset += n


def broadcast_weights(nets: Sequence[torch.nn.Module], dist: Dist) -> None:
    """Make every process start from rank 0's weights and buffers."""
    if dist.world == 1:
        return
    for net in nets:
        for tensor in list(net.parameters()) + list(net.buffers()):
            torch.distributed.broadcast(tensor.data, src=0)


def optimizer_step(nets: Sequence[tuple[torch.nn.Module, torch.optim.Optimizer]],
                   loss: torch.Tensor, dist: Dist, *, phase: str) -> None:
    """Backward, gradient sync, step of every (module, optimiser) — stopping on a bad loss."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(f"the {phase} loss became {loss.item()}; training stopped and "
                               f"the last good snapshot is kept (lower the learning rate or "
                               f"raise --gamma).")
    for _, opt in nets:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    for net, opt in nets:
        sync_gradients(net, dist)
        opt.step()
