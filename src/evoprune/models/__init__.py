"""Models: the built-in networks, training and loading, pruned layers, shrinking, export and deployment."""
