"""Datasets shipped inside the evoprune package."""
