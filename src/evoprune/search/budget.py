"""Memory budget of a search, estimated from its config before anything is allocated."""

from __future__ import annotations

import os

from evoprune.errors import ConfigError

# Bytes one evaluated genome costs in memory (memo entry, mask key, archive row) for the
# notebook's model (1,500 head weights; 1,689 kernel weights with layers = "all").
_BYTES_PER_GENOME = {
    "auto": 800,  # threshold or layer_thresholds
    "threshold": 600,
    "layer_thresholds": 800,
    "unit_thresholds": 2_000,
    "mask": 60_000,
}


def memory_estimate(search) -> tuple[int, int]:
    """Upper estimate of a search's evaluations and bytes, from the config alone.

    Evaluations: at most ``population x (generations + 1)``, or the evaluation budget plus
    one generation's overshoot. Bytes: each evaluation's memo entry, plus the logbook's
    best genome per generation and the population, at the encoding's cost per genome.
    """
    evaluations = search.population * (search.generations + 1)
    if search.max_evaluations:
        evaluations = min(evaluations, search.max_evaluations + search.population)
    per_genome = _BYTES_PER_GENOME.get(search.encoding, max(_BYTES_PER_GENOME.values()))
    genomes = evaluations + search.generations + 2 * search.population
    return evaluations, genomes * per_genome


def memory_limit() -> int:
    """This machine's physical memory in bytes (16 GiB where it cannot be read)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def check_memory(search) -> None:
    """Refuses a search whose estimated memory exceeds this machine's, before allocating any.

    Raises:
        ConfigError: naming the evaluations, the estimate and the limit.
    """
    evaluations, estimate = memory_estimate(search)
    limit = memory_limit()
    if estimate > limit:
        raise ConfigError(
            f"Expected a search that fits in memory: up to {evaluations:,} evaluations of "
            f"{search.encoding!r} genomes need about {estimate / 2**30:,.1f} GiB, more than this "
            f"machine's {limit / 2**30:,.1f} GiB. Received: search.population={search.population}, "
            f"search.generations={search.generations}, search.max_evaluations={search.max_evaluations}"
        )
