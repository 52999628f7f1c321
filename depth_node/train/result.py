"""What a training run hands back (`TrainResult`) and how it says it was stopped by a signal
(`TrainingInterrupted`): plain values shared by the loop, the report and the command, kept apart so none of
them imports another for these."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from depth_node.errors import DepthNodeError


class TrainingInterrupted(DepthNodeError):
    """Raised after a signal-triggered checkpoint; `signum` says which signal."""

    def __init__(self, signum: int, checkpoint: Path | None) -> None:
        super().__init__(f"stopped by signal {signum}; checkpoint saved to {checkpoint} (continue with --resume)")
        self.signum = signum
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    out_dir: Path
    steps: int
    epochs_done: int
    best: dict[str, Any] | None
    history: list[dict[str, Any]]
    model_path: Path | None = None
    onnx_dir: Path | None = None
    report: Path | None = None
    losses: list[float] = field(default_factory=list)  # per-step training loss (this process, this session)
