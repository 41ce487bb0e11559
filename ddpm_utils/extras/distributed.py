"""Multi-process training with PyTorch's DistributedDataParallel, launched by `torchrun`.

    torchrun --standalone --nproc_per_node=4 -m ddpm_utils train --batch-size 512 ...     # one node
    torchrun --nnodes=2 --node_rank=R --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 \\
             --nproc_per_node=8 -m ddpm_utils train ...                                   # several

`Trainer` does the rest: each rank keeps its slice of one global batch, DDP averages gradients,
and rank 0 alone writes checkpoints. We use plain DDP rather than Hugging Face Accelerate: it is
part of PyTorch (no extra dependency), the training loop stays visible, and `torchrun` covers one
node and many.
"""

from __future__ import annotations

import os

import torch

__all__ = ["setup_from_env", "cleanup"]


def setup_from_env() -> torch.device:
    """Initialise the process group from torchrun's environment; returns this rank's device.

    Without torchrun (WORLD_SIZE unset or 1) nothing happens and the default device is returned.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(backend)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def cleanup() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
