"""Training throughput: cull's loop against a bare PyTorch loop, side by side in one run.

    python benchmarks/bench_training.py [--images 6000] [--repeats 3]

Both loops train the same C&W MNIST net on the same uint8 tensors already in
memory, with the same batch size and optimizer; the bare loop has no progress
bar, no bookkeeping and no history. Also measures the machine's float32 matmul
peak in the same run, and reports ours as a fraction of it (the C&W MNIST net
costs about 3 x 20 MFLOP per training image: forward plus backward).

`--variants` also times what else was tried on the bare loop, as a ratio to it:
channels-last weights and inputs, batch size 256, one thread, bfloat16 autocast
(with and without channels-last) and torch.compile (its compile time excluded).
The float32 ones do not help on 2 CPU cores. bfloat16 autocast with
channels-last is cull's default (`train.precision`), chosen because its
numbers fall inside float32's intervals over 3 seeds (bench_precision.py);
the two loops here are timed in float32, the plain loop.
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


def bare_loop(x: torch.Tensor, y: torch.Tensor, *, batch_size: int, seed: int, channels_last: bool = False,
              bfloat16: bool = False, compiled: bool = False) -> float:
    """One epoch of plain PyTorch training; returns images/s.

    Timed from the model's construction, as `train_model` is, less the warm-up
    step that compiles when `compiled`.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    model = build_model(ModelConfig())
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    forward = torch.compile(model) if compiled else model
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))

    def step(idx):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bfloat16):
            logits = forward(to_float(x[idx]).contiguous(memory_format=fmt))
        loss = F.cross_entropy(logits.float(), y[idx])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    if compiled:
        warm = time.perf_counter()
        step(perm[:batch_size])
        start += time.perf_counter() - warm
    for first in range(0, len(x), batch_size):
        step(perm[first : first + batch_size])
    return len(x) / (time.perf_counter() - start)


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
    ap.add_argument("--variants", action="store_true", help="also time what else was tried (about 2 more minutes)")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(args.images, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, size=args.images)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    train = Train(batch_size=args.batch_size, precision="float32")  # the bare loop is float32 too
    ours, bare = [], []
    for r in range(args.repeats):  # interleaved, so drift in machine load hits both alike
        bare.append(bare_loop(xt, yt, batch_size=args.batch_size, seed=r))
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
    if args.variants:
        variants = {"channels-last": {"channels_last": True}, "batch 256": {"batch_size": 256},
                    "one thread": {"threads": 1}, "bfloat16 autocast": {"bfloat16": True},
                    "bfloat16 + channels-last": {"bfloat16": True, "channels_last": True},
                    "torch.compile": {"compiled": True}}
        for name, options in variants.items():
            options = {"batch_size": args.batch_size, **options}
            threads = torch.get_num_threads()
            variant_threads = options.pop("threads", threads)
            plain, tried = [], []
            for r in range(args.repeats):  # interleaved with the plain bare loop, as above
                plain.append(bare_loop(xt, yt, batch_size=args.batch_size, seed=r))
                torch.set_num_threads(variant_threads)
                tried.append(bare_loop(xt, yt, seed=r, **options))
                torch.set_num_threads(threads)
            print(f"variant {name:26s} {max(tried):8.0f} images/s   ratio to the bare loop beside it "
                  f"{max(tried) / max(plain):.2f}")


if __name__ == "__main__":
    main()
