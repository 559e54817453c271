"""Scoring: accuracy of masked models (Keras, head and suffix scorers) and the exact one-threshold sweep."""
