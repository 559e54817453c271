"""Data: the sources (TFDS, IDX directories, image folders, .npz, the bundled sample) and their readers."""
