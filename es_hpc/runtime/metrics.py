"""Live metrics: the scalars of each row a job appends to its HDF5 log, also sent to TensorBoard event files
(`log.tensorboard`: OUT/tensorboard) and a Weights & Biases run (`log.wandb`: OUT/wandb), to watch a run while it
trains. Only rank 0 has writers (Sink.open_live); the HDF5 log stays the record and these show the same numbers.
Both packages are optional; config.load checks that the one asked for is installed before a job starts."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np


def scalars(table: str, row: dict) -> dict[str, float]:
    """The scalars of one log row, tagged TABLE/COLUMN (a column named GROUP/NAME, as time/generate, as it is): every
    0-d number but the iteration (the step), NaN left out (a drift not measured), and for the member rewards of a
    `rewards` column their mean and max."""
    out = {}
    for key, value in row.items():
        value = np.asarray(value)
        if key == "rewards":
            out[f"{table}/reward_mean"] = float(np.mean(value, dtype=np.float64))
            out[f"{table}/reward_max"] = float(value.max())
        elif key != "iteration" and value.ndim == 0 and np.issubdtype(value.dtype, np.number) and not np.isnan(value):
            out[key if "/" in key else f"{table}/{key}"] = float(value)
    return out


class _TensorBoard:
    """Event files in OUT/tensorboard, written through torch.utils.tensorboard (the tensorboard package)."""

    def __init__(self, cfg, out_dir: Path, purge_step: int | None):
        from torch.utils.tensorboard import SummaryWriter

        self.where = out_dir / "tensorboard"
        self.writer = SummaryWriter(str(self.where), purge_step=purge_step)

    def add(self, step: int, values: dict[str, float]) -> None:
        for tag, value in values.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # visible to a running `tensorboard --logdir` at once

    def close(self) -> None:
        self.writer.close()


class _WandB:
    """A W&B run in OUT/wandb (log.wandb_mode offline: a local run directory, for `wandb sync` later). A resumed
    job starts a new run of the same name, from the iteration it resumes at."""

    def __init__(self, cfg, out_dir: Path, purge_step: int | None):
        import wandb

        settings = wandb.Settings(console="off", silent=True, disable_git=True)  # our stdout stays ours
        self.run = wandb.init(project=cfg.log.wandb_project, name=out_dir.name, dir=str(out_dir),
                              mode=cfg.log.wandb_mode, config=dataclasses.asdict(cfg), settings=settings)
        self.where = Path(self.run.dir).parent

    def add(self, step: int, values: dict[str, float]) -> None:
        self.run.log(values, step=step)

    def close(self) -> None:
        self.run.finish()


class LiveMetrics:
    """The writers `cfg.log` asks for; `add(table, row)` sends a log row's scalars to each, at the row's iteration.
    With `purge_step` (a resumed job), TensorBoard hides what an earlier attempt logged from that step on."""

    def __init__(self, cfg, out_dir: Path, purge_step: int | None = None):
        self.writers = [kind(cfg, Path(out_dir), purge_step)
                        for key, kind in (("tensorboard", _TensorBoard), ("wandb", _WandB)) if getattr(cfg.log, key)]

    def where(self) -> str:
        """Where the writers write, for the job's start-up line."""
        return ", ".join(str(w.where) for w in self.writers)

    def add(self, table: str, row: dict) -> None:
        values = scalars(table, row)
        for writer in self.writers:
            writer.add(int(row["iteration"]), values)

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
