"""Rewards that fail safely: a reward that raises, returns no finite number or runs past task.reward_timeout
scores 0 for that completion and is counted; no reward can stop or hang the job.

es_hpc's own tasks are scored in this process: their rewards are bounded, tested code (an exception still
scores 0). Every other reward (a task defined outside es_hpc, or a built-in one whose reward runs code from
the config: `Task.isolated_reward`, prompt_answer's regex) is scored in a worker process, because nothing in
this process can stop it for sure: a thread cannot be killed, and an alarm here would not stop a reward that
catches it or waits in C code, nor survive one that calls sys.exit or crashes the interpreter. The worker is
started once per rank, as a fresh interpreter (`python -c`, this process's sys.path; no copy of the model or
the communicator, and unlike multiprocessing's spawn it never re-runs the job's __main__), and gets the task
pickled (its rules; a dataset task's rows stay behind), so its class must be importable. It scores each
completion under a SIGALRM deadline of reward_timeout seconds, which stops pure-Python loops and regular
expressions cheaply, and sends one result per completion back. This process waits reward_timeout + GRACE
seconds for each result; past that (a reward that swallowed the alarm or hangs in C code), or when the worker
dies, it kills the worker, scores the completion 0 and starts a fresh worker for the rest of the batch.
"""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import json
import math
import multiprocessing
import pickle
import signal
import subprocess
import sys
from multiprocessing.connection import Connection

import numpy as np

from ..config import ConfigError
from ..errors import error_line
from ..tasks.base import Task

GRACE = 1.0  # seconds past reward_timeout before the worker is killed
STARTUP = 120.0  # seconds a fresh worker may take to import the task's modules and unpickle it
_BOOT = "import json, sys; sys.path[:0] = json.loads(sys.argv[2]); from es_hpc.eval.rewards import serve; serve()"


class RewardTimeout(BaseException):
    """Raised in the worker at a reward's deadline; not an Exception, so `except Exception` does not hide it."""


def _alarm(_signum, _frame):
    raise RewardTimeout


def isolated(task: Task) -> bool:
    """Whether `task`'s reward is scored in the worker process (module doc)."""
    return task.isolated_reward or not type(task).__module__.startswith("es_hpc.tasks.")


def guarded(task: Task, completion: str, row: dict) -> tuple[float, str | None]:
    """(the reward, None), or (0.0, why) when the reward raised or returned no finite number."""
    try:
        value = float(task.reward(completion, row))
    except Exception as exc:
        return 0.0, error_line(exc)
    return (value, None) if math.isfinite(value) else (0.0, f"returned {value}, not a finite number")


def _timed(task: Task, completion: str, row: dict, timeout: float) -> tuple[float, str | None]:
    """guarded() under a deadline of `timeout` seconds (SIGALRM: the worker's main thread); anything the
    reward raises, SystemExit included, scores 0."""
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return guarded(task, completion, row)
    except RewardTimeout:
        return 0.0, f"ran past task.reward_timeout ({timeout:g} s)"
    except BaseException as exc:  # SystemExit, KeyboardInterrupt raised by the reward itself
        return 0.0, error_line(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def serve() -> None:
    """The worker process (started by RewardWorker.start): unpickle the task and its deadline, then score every
    batch received, one result sent per completion."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):  # the job's signals: the job stops the worker
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(AttributeError, OSError):  # Linux: killed with the job, whatever it is doing
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    conn = Connection(int(sys.argv[1]))
    try:
        task, timeout = pickle.loads(conn.recv_bytes())
    except BaseException as exc:
        conn.send(("failed", error_line(exc)))
        return
    signal.signal(signal.SIGALRM, _alarm)
    with contextlib.suppress(EOFError, OSError):  # the job closed the pipe, or ended: so does the worker
        conn.send(("ready", None))
        while True:
            texts, rows = conn.recv()
            for completion, row in zip(texts, rows):
                try:
                    result = _timed(task, completion, row, timeout)
                except RewardTimeout:  # the alarm fired just as the reward returned
                    result = (0.0, f"ran past task.reward_timeout ({timeout:g} s)")
                conn.send(result)


class RewardWorker:
    """The worker process of one rank (module doc): started on first use and again after each kill."""

    def __init__(self, blob: bytes, timeout: float):
        self.blob, self.timeout = blob, timeout
        self.proc = self.conn = None
        atexit.register(self.stop)

    def start(self) -> None:
        """Start the worker and wait for it to load the task; a task it cannot load is a ConfigError."""
        self.conn, child = multiprocessing.Pipe()
        self.proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(child.fileno()), json.dumps(sys.path)],
                                     stdin=subprocess.DEVNULL, pass_fds=(child.fileno(),))
        child.close()
        status, why = "failed", f"it did not start within {STARTUP:g} s"
        try:
            self.conn.send_bytes(self.blob)
            if self.conn.poll(STARTUP):
                status, why = self.conn.recv()
        except (EOFError, OSError):
            why = f"it exited while starting, code {self.proc.wait()}"
        if status != "ready":
            self.stop()
            raise ConfigError(f"task.name: the reward worker process cannot load the task ({why})")

    def stop(self) -> None:
        """Kill the worker, if one runs (a later score starts a fresh one)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait()
            self.conn.close()
            self.proc = self.conn = None

    def score(self, texts: list[str], rows: list[dict]) -> list[tuple[float, str | None]]:
        """(reward, why it failed or None) of every completion, in order."""
        results: list[tuple[float, str | None]] = []
        while len(results) < len(texts):
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self.start()
            done = len(results)
            self.conn.send((texts[done:], rows[done:]))
            results += self._collect(len(texts) - done)
        return results

    def _collect(self, n: int) -> list[tuple[float, str | None]]:
        """Up to `n` results of the batch sent; ends with a 0 for the completion at hand, and no worker, when the
        worker overruns its deadline or dies."""
        out = []
        for _ in range(n):
            if self.conn.poll(self.timeout + GRACE):
                try:
                    out.append(self.conn.recv())
                    continue
                except (EOFError, OSError):
                    why = "the reward worker process died while scoring it"
            else:
                why = f"ran past task.reward_timeout ({self.timeout:g} s) and was killed"
            self.stop()
            out.append((0.0, why))
            break
        return out


class Rewards:
    """A task's rewards of completions, each failure scored 0 and counted: `errors` so far on this rank and
    `last_error`, the reason of the latest."""

    def __init__(self, task: Task, timeout: float):
        self.task, self.errors, self.last_error = task, 0, None
        self.worker = None
        if isolated(task):
            try:
                blob = pickle.dumps((task, timeout))
            except Exception as exc:
                raise ConfigError(f"task.name: {type(task).__name__} cannot be sent to the reward worker process "
                                  f"({error_line(exc)})") from None
            self.worker = RewardWorker(blob, timeout)

    def __call__(self, texts: list[str], rows: list[dict]) -> np.ndarray:
        if self.worker is not None:
            results = self.worker.score(texts, rows)
        else:
            results = [guarded(self.task, c, r) for c, r in zip(texts, rows)]
        failed = [why for _, why in results if why is not None]
        if failed:
            self.errors += len(failed)
            self.last_error = failed[-1]
        return np.array([value for value, _ in results], dtype=np.float64)
