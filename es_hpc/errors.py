"""Outcomes of a job that the command line turns into one line and an exit code."""

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal after a checkpoint; rerun with --resume


class Preempted(Exception):
    """SIGTERM / SIGUSR1 arrived: the iteration was finished and checkpointed on every rank's agreement."""


class Diverged(RuntimeError):
    """Ranks that must hold bit-identical parameters do not."""


class PeerLost(RuntimeError):
    """A collective failed because another rank's connection closed: that rank died, or its node failed."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message, or its type's name when it has none: for one-line errors."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def error_line(exc: BaseException) -> str:
    """An exception as one line, "Type: first line of its message", for one-line errors and log lines."""
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() else type(exc).__name__
