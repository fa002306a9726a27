"""Metrics to a long-format CSV (step, time_s, key, value) and to TensorBoard."""

from __future__ import annotations

import csv
import hashlib
import math
from pathlib import Path
from typing import Any

import torch

from dramaturg.runtime.checkpoint import CheckpointError
from dramaturg.runtime.tfevents import EventWriter

HEADER = ["step", "time_s", "key", "value"]


class Logger:
    def __init__(self, run_dir: Path, tensorboard: bool = True, *, resume: bool = False):
        """A resumed run's file is left as it is until `restore` has checked it."""
        self.path = run_dir / "metrics.csv"
        self.run_dir = run_dir
        self.tensorboard = tensorboard
        self._writer = None
        self._rows: list[list[Any]] = []
        self.latest: dict[str, float] = {}
        if not resume and not self.path.exists():
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(HEADER)

    def mark(self) -> dict[str, Any]:
        """What a checkpoint records of the file (after a flush): its length and checksum."""
        self.flush()
        data = self.path.read_bytes()
        return {"metrics_bytes": len(data), "metrics_sha256": hashlib.sha256(data).hexdigest()}

    def restore(self, mark: dict[str, Any]) -> None:
        """Drop what was written after the checkpoint whose `mark` is given (the resumed run
        writes it again), after checking that the file still begins with what it held then."""
        size = mark["metrics_bytes"]
        data = self.path.read_bytes() if self.path.is_file() else b""
        if len(data) < size or hashlib.sha256(data[:size]).hexdigest() != mark["metrics_sha256"]:
            raise CheckpointError(
                f"{self.path}: {'missing' if not self.path.is_file() else 'altered or truncated'}; it no longer "
                "holds the metrics logged up to the last checkpoint, so the resumed run could not continue them"
            )
        with open(self.path, "r+b") as f:
            f.truncate(size)

    def log(self, step: int, time_s: float, metrics: dict[str, Any]) -> None:
        for key, value in metrics.items():
            v = value.item() if isinstance(value, torch.Tensor) else float(value)
            self.latest[key] = v
            self._rows.append([step, f"{time_s:.4f}", key, repr(v) if math.isfinite(v) else str(v)])

    def flush(self) -> None:
        if not self._rows:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerows(self._rows)
        if self.tensorboard:
            if self._writer is None:
                self._writer = EventWriter(self.run_dir / "tb")
            for step, _, key, value in self._rows:
                self._writer.scalar(key, float(value), int(step))
            self._writer.flush()
        self._rows = []

    def close(self) -> None:
        self.flush()
        if self._writer is not None:
            self._writer.close()


def read_metrics(run_dir: Path) -> list[tuple[int, float, str, float]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    return [(int(s), float(t), k, float(v)) for s, t, k, v in rows]
