"""Refinement after the search: fine-tuning, whole-model retraining, selection, and the magnitude baseline."""
