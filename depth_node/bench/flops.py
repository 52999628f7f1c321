"""FLOPs of a network at an input size, counted once on the PyTorch graph (convolutions and matmuls, 2 × MACs),
so every backend's achieved GFLOP/s divides the same work by its own time. Counted on the meta device: shapes
only, no arithmetic, so counting costs nothing even on a busy machine."""

from __future__ import annotations

import copy

import torch
from torch import nn


def count_flops(module: nn.Module, example: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    meta = copy.deepcopy(module).to("meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(example.to("meta"))
    return int(counter.get_total_flops())
