"""Experiments: one search, trials and their executors, the compare and bench presets, run directories."""
