"""Live metrics: which scalars a log row gives, rank 0 alone writing them, and TensorBoard after a resume showing
each step once, with the values of the log that the resumed job continues."""
from contextlib import ExitStack

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from es_hpc import config
from es_hpc.runtime.metrics import scalars
from es_hpc.runtime.sink import Sink

TABLES = {"train": {"iteration": ((), np.int64), "rewards": ((2,), np.float32), "baseline_drift": ((), np.float32)},
          "eval": {"iteration": ((), np.int64), "reward": ((), np.float32)}}


def test_scalars_of_a_row():
    row = {"iteration": np.int64(3), "seeds": np.arange(4, dtype=np.uint64), "rewards": np.float32([0.25, 0.5, 1, 0]),
           "tokens": np.int64(51), "baseline_drift": np.float32(np.nan), "time/generate": np.float32(0.5)}
    assert scalars("train", row) == {"train/reward_mean": 0.4375, "train/reward_max": 1.0, "train/tokens": 51.0,
                                     "time/generate": 0.5}
    assert scalars("eval", {"iteration": np.int64(0), "reward": np.float32(0.25)}) == {"eval/reward": 0.25}


def _attempt(out, rank: int, rows: list[tuple[str, dict]], resume: int | None = None) -> Sink:
    """One job attempt on `rank`: the log opened (or resumed), live metrics on, `rows` appended, all closed."""
    cfg = config.load(None, ["log.tensorboard=true"])
    with ExitStack() as cleanup:
        sink = Sink(rank, cleanup)
        sink.open(out / "log.h5", {}, TABLES, resume_iteration=resume)
        sink.open_live(cfg, out, resume_iteration=resume)
        for table, row in rows:
            sink.append(table, row)
    return sink


def _train(t: int, reward: float) -> tuple[str, dict]:
    return "train", {"iteration": np.int64(t), "rewards": np.float32([reward, 0]), "baseline_drift": np.float32(0)}


def _eval(u: int, reward: float) -> tuple[str, dict]:
    return "eval", {"iteration": np.int64(u), "reward": np.float32(reward)}


def _events(out, tag: str) -> tuple[list[int], list[float]]:
    """The steps and values TensorBoard shows for `tag`, in order."""
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return [e.step for e in events.Scalars(tag)], [e.value for e in events.Scalars(tag)]


def test_other_ranks_write_no_metrics(tmp_path):
    sink = _attempt(tmp_path, 1, [_eval(0, 0.5), _train(0, 0.5)])
    assert sink.live is None and not (tmp_path / "tensorboard").exists()


def test_resume_shows_each_step_once(tmp_path):
    """A job that stopped after iteration 3 resumes from its checkpoint at 2: TensorBoard hides what the first
    attempt logged from step 2 on and gets the log's evaluation at 2 again, so it shows what the log holds."""
    first = [_eval(0, 0.1), _train(0, 0.2), _eval(1, 0.3), _train(1, 0.4), _eval(2, 0.5), _train(2, 0.6),
             _eval(3, 0.7), _train(3, 0.8)]
    _attempt(tmp_path, 0, first)
    _attempt(tmp_path, 0, [_train(2, 0.9), _eval(3, 1.0)], resume=2)
    steps, values = _events(tmp_path, "eval/reward")
    assert steps == [0, 1, 2, 3] and values == pytest.approx([0.1, 0.3, 0.5, 1.0])
    steps, values = _events(tmp_path, "train/reward_max")
    assert steps == [0, 1, 2] and values == pytest.approx([0.2, 0.4, 0.9])
