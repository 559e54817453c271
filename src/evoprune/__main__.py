"""Entry point for ``python -m evoprune``."""

from evoprune.cli import main

main()
