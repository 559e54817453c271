"""User-facing error types: each carries one clear line for the CLI."""


class EvopruneError(Exception):
    """An error caused by user input; the CLI prints its message on one line."""


class ConfigError(EvopruneError):
    """A configuration value is missing, of the wrong type or out of range."""


class DataError(EvopruneError):
    """A dataset cannot be found, read or parsed."""


class ModelError(EvopruneError):
    """A model file is unusable (not Keras, NaN weights, missing layer)."""


class CheckpointError(EvopruneError):
    """A checkpoint that is missing, damaged, foreign or of another run."""


class SearchInterrupted(EvopruneError):
    """The user asked to stop; the work done so far is checkpointed."""


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm, ``docker stop``, Kubernetes, systemd), raised in the main thread so that
    worker pools, Dask clusters and locks are cleaned up as after a Ctrl-C."""
