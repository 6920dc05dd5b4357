"""Training throughput: cull's loop against a bare PyTorch loop, side by side in one run.

    python benchmarks/bench_training.py [--images 6000] [--repeats 3]

Both loops train the same C&W MNIST net on the same uint8 tensors already in
memory, with the same batch size and optimizer; the bare loop has no progress
bar, no bookkeeping and no history. Also measures the machine's float32 matmul
peak in the same run, and reports ours as a fraction of it (the C&W MNIST net
costs about 3 x 20 MFLOP per training image: forward plus backward).
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from cull.models import ModelConfig, build_model, to_float
from cull.params import Train
from cull.training import train_model

TRAIN_FLOP_PER_IMAGE = 3 * 20e6  # forward (~20 MFLOP) + backward (~2x forward)


def bare_loop(x: torch.Tensor, y: torch.Tensor, *, batch_size: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = build_model(ModelConfig())
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(x), batch_size):
        idx = perm[start : start + batch_size]
        loss = F.cross_entropy(model(to_float(x[idx])), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def matmul_peak(n: int = 2048, repeats: int = 5) -> float:
    a = torch.rand(n, n)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return repeats * 2 * n**3 / (time.perf_counter() - start)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=6000)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(args.images, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=args.images)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    train = Train(batch_size=args.batch_size)
    ours, bare = [], []
    for r in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        start = time.perf_counter()
        bare_loop(xt, yt, batch_size=args.batch_size, seed=r)
        bare.append(args.images / (time.perf_counter() - start))
        start = time.perf_counter()
        train_model(x, y, train=train, epochs=1, seed=r, device=torch.device("cpu"), desc="ours")
        ours.append(args.images / (time.perf_counter() - start))
    peak = matmul_peak()
    best_ours, best_bare = max(ours), max(bare)
    print(f"threads {torch.get_num_threads()}, batch {args.batch_size}, {args.images} images x {args.repeats} repeats")
    print(f"bare loop   {best_bare:8.0f} images/s")
    print(f"cull loop   {best_ours:8.0f} images/s   ratio ours/bare = {best_ours / best_bare:.3f} (target >= 0.95)")
    print(f"matmul peak {peak / 1e9:8.1f} GFLOP/s; cull training reaches "
          f"{best_ours * TRAIN_FLOP_PER_IMAGE / 1e9:.1f} GFLOP/s = {best_ours * TRAIN_FLOP_PER_IMAGE / peak:.1%} of it")


if __name__ == "__main__":
    main()
