"""Search: genomes, operators, the DEAP loop, its randomness, checkpoints and memory budget."""
