"""Outcomes of a job that the command line turns into one line and an exit code."""

EXIT_PREEMPTED = 75  # EX_TEMPFAIL: stopped by a signal after a checkpoint; rerun with --resume


class Preempted(Exception):
    """SIGTERM / SIGUSR1 arrived: the iteration was finished and checkpointed on every rank's agreement."""


class Diverged(RuntimeError):
    """Ranks that must hold bit-identical parameters do not."""


class PeerLost(RuntimeError):
    """A collective failed because another rank's connection closed: that rank died, or its node failed."""
