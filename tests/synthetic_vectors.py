"""Synthetic embedding vectors for the search tests: unit-length vectors clustered around
random centres, as embeddings of related texts cluster. Seeded: the same seed gives the same
vectors on every machine, so recall thresholds hold from run to run."""

import numpy as np
import pytest

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


# Exact search up to this many vectors, a tenant's own index above it: lowered from the
# settings' tens of thousands so the tests' tenants hold hundreds of synthetic vectors.
SMALL_THRESHOLD = 300


@pytest.fixture
def small_vector_thresholds(settings):
    """Plan thresholds at SMALL_THRESHOLD and a fresh view of the ready tenant indexes (a
    module asks for it with `pytestmark = pytest.mark.usefixtures(...)`; tests/conftest.py
    loads this module as a plugin)."""
    from search import tenant_indexes

    settings.SEARCH_EXACT_MAX_ROWS = SMALL_THRESHOLD
    settings.SEARCH_TENANT_INDEX_MIN_ROWS = SMALL_THRESHOLD
    settings.SEARCH_TENANT_INDEX_MAX = 10
    settings.SEARCH_TENANT_INDEX_EF_SEARCH = 100
    tenant_indexes.forget_cache()
    yield
    tenant_indexes.forget_cache()

