import numpy as np
import pytest
import torch
import torch.nn as nn

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


SIDE, CLASSES = 12, 4  # the tiny attack tests' images and classes


def synthetic(n, seed):
    """Four classes, each a fixed random binary pattern at contrast 0.4, plus noise: (n, 1, 12, 12), (n,)."""
    templates = (torch.rand(CLASSES, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=g)
    x = (0.3 + 0.4 * templates[y] + 0.1 * torch.randn(n, 1, SIDE, SIDE, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def one_thread():
    """Two shared cores: tiny models run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cnn(seed, x, y):
    """A tiny conv net for 12x12 inputs, fitted to (x, y) with full-batch Adam; eval mode, no grads."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 5 * 5, CLASSES))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in net.parameters():
        p.grad = None
    return net.eval()
