"""evoprune: prune neural network weights with evolutionary algorithms."""

__version__ = "0.1.0"
