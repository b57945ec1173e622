"""Synthetic embedding vectors for the search tests: unit-length vectors clustered around
random centres, as embeddings of related texts cluster. Seeded: the same seed gives the same
vectors on every machine, so recall thresholds hold from run to run."""

import numpy as np

DIMS = 384


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def random_centers(count: int, *, seed: int, dims: int = DIMS) -> np.ndarray:
    return unit(np.random.default_rng(seed).standard_normal((count, dims)))


def near(points: np.ndarray, rng: np.random.Generator, noise: float) -> np.ndarray:
    """Unit vectors scattered around `points` (one each), as float32 like stored vectors."""
    return unit(points + rng.standard_normal(points.shape) * noise).astype(np.float32)


def clustered(centers: np.ndarray, count: int, *, seed: int, noise: float = 0.05) -> np.ndarray:
    """`count` vectors, each near a centre picked at random."""
    rng = np.random.default_rng(seed)
    return near(centers[rng.integers(0, len(centers), count)], rng, noise)
