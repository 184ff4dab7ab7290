"""One small interface over Horovod, torch DDP and a single process.

The training loop calls only these methods, so the same loop, data, model, loss,
checkpoint and evaluation code runs under every launcher:

- ``rank``, ``size``, ``local_rank``, ``local_size``;
- ``prepare(model, optimizer, grad_accumulation)`` wraps the model or optimizer;
- ``sync_state(model, optimizer, resumed)`` makes every process start from rank 0's
  parameters and, after a resume, its optimizer state;
- ``no_sync(model)`` skips the gradient exchange on accumulation steps;
- ``optimizer_step(...)`` exchanges gradients, unscales, clips and steps;
- ``allreduce_mean``, ``broadcast_object`` and ``barrier``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

logger = logging.getLogger(__name__)


def _clip(parameters: Iterable[nn.Parameter], max_grad_norm: float) -> float:
    if max_grad_norm <= 0:
        return float("nan")
    return float(torch.nn.utils.clip_grad_norm_(list(parameters), max_grad_norm))


class SingleProcess:
    """A run of one process without any collective communication."""

    name = "single"
    rank = 0
    size = 1
    local_rank = 0
    local_size = 1

    def prepare(self, model: nn.Module, optimizer: torch.optim.Optimizer, grad_accumulation: int):
        return model, optimizer

    def sync_state(self, model: nn.Module, optimizer: torch.optim.Optimizer, resumed: bool) -> None:
        return None

    def no_sync(self, model: nn.Module):
        return contextlib.nullcontext()

    def optimizer_step(self, optimizer, scaler, parameters, max_grad_norm: float) -> float:
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = _clip(parameters, max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        return norm

    def allreduce_mean(self, value: float) -> float:
        return float(value)

    def broadcast_object(self, value: Any, root: int = 0) -> Any:
        return value

    def barrier(self) -> None:
        return None

    def shutdown(self) -> None:
        return None


class HorovodContext(SingleProcess):
    """Horovod with ``hvd.DistributedOptimizer``; Gloo on the CPU, NCCL on GPUs where built."""

    name = "horovod"

    def __init__(self) -> None:
        import horovod.torch as hvd

        hvd.init()
        self.hvd = hvd
        self.rank = hvd.rank()
        self.size = hvd.size()
        self.local_rank = hvd.local_rank()
        self.local_size = hvd.local_size()

    def prepare(self, model, optimizer, grad_accumulation):
        distributed = self.hvd.DistributedOptimizer(
            optimizer,
            named_parameters=model.named_parameters(),
            backward_passes_per_step=grad_accumulation,
            op=self.hvd.Average,
        )
        return model, distributed

    def sync_state(self, model, optimizer, resumed):
        # The optimizer state goes first: on a process with an empty state, Horovod
        # initialises it with one step on zero gradients, which can move the
        # parameters (weight decay), and the parameter broadcast after it undoes that.
        if resumed:
            self.hvd.broadcast_optimizer_state(optimizer, root_rank=0)
        self.hvd.broadcast_parameters(model.state_dict(), root_rank=0)

    def optimizer_step(self, optimizer, scaler, parameters, max_grad_norm):
        # Gradients are averaged before clipping, so every process clips the same values.
        optimizer.synchronize()
        if scaler is not None:
            scaler.unscale_(optimizer)
        norm = _clip(parameters, max_grad_norm)
        with optimizer.skip_synchronize():
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
        return norm

    def allreduce_mean(self, value):
        tensor = torch.tensor([float(value)], dtype=torch.float64)
        return float(self.hvd.allreduce(tensor, op=self.hvd.Average, name="shl.allreduce_mean")[0])

    def broadcast_object(self, value, root=0):
        # Horovod names the collective after type(value) unless a name is given, so a
        # dict on the root and None elsewhere would never meet.
        return self.hvd.broadcast_object(value, root_rank=root, name="shl.broadcast_object")

    def barrier(self):
        self.hvd.barrier()

    def shutdown(self):
        self.hvd.shutdown()


class TorchDDPContext(SingleProcess):
    """torch.distributed with DistributedDataParallel, as TorchDistributor and torchrun start it.

    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT``
    from the environment; uses NCCL when ``use_cuda`` and Gloo otherwise.
    """

    name = "torch_ddp"

    def __init__(self, use_cuda: bool) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.use_cuda = use_cuda
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        if use_cuda:
            torch.cuda.set_device(self.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo")
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()
        self.device = torch.device("cuda", self.local_rank) if use_cuda else torch.device("cpu")

    def prepare(self, model, optimizer, grad_accumulation):
        from torch.nn.parallel import DistributedDataParallel

        device_ids = [self.local_rank] if self.use_cuda else None
        # DDP broadcasts rank 0's parameters and buffers when it wraps the model.
        return DistributedDataParallel(model, device_ids=device_ids), optimizer

    def sync_state(self, model, optimizer, resumed):
        if not resumed:
            return
        state = self.broadcast_object(optimizer.state_dict() if self.rank == 0 else None)
        if self.rank != 0:
            optimizer.load_state_dict(state)

    def no_sync(self, model):
        return model.no_sync()

    def allreduce_mean(self, value):
        tensor = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        self.dist.all_reduce(tensor, op=self.dist.ReduceOp.SUM)
        return float(tensor[0]) / self.size

    def broadcast_object(self, value, root=0):
        holder = [value]
        self.dist.broadcast_object_list(holder, src=root)
        return holder[0]

    def barrier(self):
        self.dist.barrier()

    def shutdown(self):
        if self.dist.is_initialized():
            self.dist.destroy_process_group()
