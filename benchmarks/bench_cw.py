"""C&W L2 throughput: cull's batched attack against a plain one-example-at-a-time loop.

    python benchmarks/bench_cw.py --model models/unsanitized.pt --data data/dataset.npz
    python benchmarks/bench_cw.py ... --images 15 --steps 1000 --search-steps 9   # the paper's set

Both run the same algorithm (cull.attacks.cw_l2) with the same settings on the
same rows (n correctly classified test images x 9 targets x the kappas). The
loop calls it with batches of one row, as a straightforward implementation
would; it runs on `--loop-rows` rows only and is scaled to the whole set.
Prints examples/s for each, the ratio, success and mean L2 on the shared rows.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cull.artifacts import load_npz
from cull.attacks.run import CW_STREAM, choose, cw_rows
from cull.attacks.cw import cw_l2
from cull.models import load_checkpoint, to_float
from cull.training import predict_logits


def attack(model, x, rows, idx, args):
    res = cw_l2(
        model, to_float(torch.as_tensor(x[rows["cw_index"][idx]])),
        torch.as_tensor(rows["cw_source"][idx]), torch.as_tensor(rows["cw_target"][idx]),
        kappa=torch.as_tensor(rows["cw_kappa"][idx], dtype=torch.float32),
        steps=args.steps, search_steps=args.search_steps,
    )
    return res.success.numpy(), res.l2.numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--images", type=int, default=15, help="source test images (x 9 targets)")
    ap.add_argument("--kappas", type=float, nargs="+", default=[0.0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--search-steps", type=int, default=9)
    ap.add_argument("--loop-rows", type=int, default=4, help="rows the one-at-a-time loop runs")
    args = ap.parse_args()
    data = load_npz(args.data, ("test_x", "test_y"))
    model, _ = load_checkpoint(args.model)
    x, y = data["test_x"], data["test_y"]
    correct = np.flatnonzero(predict_logits(model, x, device=torch.device("cpu")).argmax(1).numpy() == y)
    index = choose(correct, args.images, seed=0, stream=CW_STREAM, what="--images")
    rows = cw_rows(index, y[index], args.kappas, 10)
    m = len(rows["cw_index"])

    start = time.perf_counter()
    success, l2 = attack(model, x, rows, slice(None), args)
    batched_s = time.perf_counter() - start

    loop_rows = np.arange(min(args.loop_rows, m))
    start = time.perf_counter()
    loop = [attack(model, x, rows, slice(i, i + 1), args) for i in loop_rows]
    loop_s = (time.perf_counter() - start) / len(loop_rows) * m  # scaled to all m rows
    loop_success = np.concatenate([s for s, _ in loop])
    loop_l2 = np.concatenate([d for _, d in loop])

    print(f"C&W L2, {m} rows ({args.images} images x 9 targets x {len(args.kappas)} kappas), "
          f"{args.steps} iterations x {args.search_steps} search steps, {torch.get_num_threads()} threads")
    print(f"batched  {batched_s:7.1f} s  {m / batched_s:6.3f} examples/s  success {success.mean():.3f}  "
          f"mean L2 {np.nanmean(l2):.4f}")
    print(f"loop     {loop_s:7.1f} s  {m / loop_s:6.3f} examples/s  (measured on {len(loop_rows)} rows, scaled)")
    print(f"speed-up batched/loop = {loop_s / batched_s:.1f}x;  on the {len(loop_rows)} shared rows: "
          f"success {success[loop_rows].mean():.2f} vs {loop_success.mean():.2f}, "
          f"mean L2 {np.nanmean(l2[loop_rows]):.4f} vs {np.nanmean(loop_l2):.4f}")
    print(f"paper-set target: <= 140 s for 135 rows; this run {batched_s / m * 135:.0f} s per 135 rows")


if __name__ == "__main__":
    main()
