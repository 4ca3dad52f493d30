"""Live training logs, written as they happen (a run stopped at any step has its log up to that step).

``RunLog(folder)`` writes ``train.csv`` (one row per step: step, lr, the recipe's losses) and
``validation.csv`` (one row per validation: step and the metrics), each flushed per row, and the same
scalars as TensorBoard event files under ``tensorboard/`` (``tensorboardX``, no TensorFlow), flushed at
every validation and every ``flush_every`` steps. ``tensorboard --logdir OUT/tensorboard`` shows them.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path


class CsvLog:
    """A CSV file whose columns grow when a row brings a new key (the file is rewritten then, rarely)."""

    def __init__(self, path: Path, resume: bool = False):
        self.path = path
        self.columns: list[str] = []
        self.rows: list[dict] = []
        if resume and path.is_file():
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                self.columns = list(reader.fieldnames or [])
                self.rows = list(reader)
        self._write_all()

    def _write_all(self) -> None:
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.columns)
            writer.writeheader()
            writer.writerows(self.rows)

    def append(self, row: dict) -> None:
        row = {k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()}
        self.rows.append(row)
        new = [k for k in row if k not in self.columns]
        if new:
            self.columns += new
            self._write_all()
            return
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.columns).writerow(row)


class RunLog:
    def __init__(self, folder: str | Path, resume: bool = False, tensorboard: bool = True, flush_every: int = 50,
                 first_step: int = 0):
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.train = CsvLog(folder / "train.csv", resume)
        self.validation = CsvLog(folder / "validation.csv", resume)
        if resume:  # rows past the checkpoint we resume from belong to the interrupted process
            for log in (self.train, self.validation):
                log.rows = [r for r in log.rows if int(r["step"]) <= first_step]
                log._write_all()
        self.flush_every = flush_every
        self.tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(folder / "tensorboard"), purge_step=first_step + 1 if resume else None)

    def step(self, step: int, logs: dict) -> None:
        self.train.append({"step": step, **{k: v for k, v in logs.items() if k != "step"}})
        self._scalars("train", step, logs)
        if self.tb is not None and step % self.flush_every == 0:
            self.tb.flush()

    def validate(self, step: int, metrics: dict) -> None:
        self.validation.append({"step": step, **metrics})
        self._scalars("validation", step, metrics)
        if self.tb is not None:
            self.tb.flush()

    def _scalars(self, group: str, step: int, values: dict) -> None:
        if self.tb is None:
            return
        for k, v in values.items():
            if k != "step" and isinstance(v, (int, float)) and math.isfinite(v):
                self.tb.add_scalar(f"{group}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
