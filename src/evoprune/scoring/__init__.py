"""Scoring: accuracy of masked models (Keras, head and graph scorers) and the exact one-threshold sweep."""
