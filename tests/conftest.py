import numpy as np
import pytest
import torch

# Two CPU cores in CI: keep each test process to one intra-op thread pool of that size.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def blobs():
    """Tiny separable 10-class images (N, 1, 28, 28) uint8: class k lights up row band k."""
    rng = np.random.default_rng(0)
    n = 400
    y = np.arange(n) % 10
    x = rng.integers(0, 40, size=(n, 1, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 0, 2 + 2 * k : 4 + 2 * k, 4:24] = 255
    return x, y.astype(np.int64)
