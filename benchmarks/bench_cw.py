"""C&W L2 throughput: cull's batched attack against a plain one-example-at-a-time loop.

    python benchmarks/bench_cw.py --model models/unsanitized/seed-0.pt --data data/dataset.npz
    python benchmarks/bench_cw.py ... --images 15 --steps 1000 --search-steps 9   # the paper's set

All runs use the same algorithm (cull.attacks.cw_l2) with the same settings on
the same rows (n correctly classified test images x 9 targets x the kappas):
  * batched on channels-last weights: float32 with every search step (the
    original algorithm), bfloat16 (the search's forward and backward under
    autocast, success confirmed in float32), and bfloat16 with the search
    tolerance of params.yaml's default (settled examples stop searching);
  * a loop that calls it with batches of one row, float32, every step, on the
    weights as loaded, as a straightforward implementation would; it runs on
    `--loop-rows` rows only and is scaled to the whole set.
Prints time, examples/s, success and mean L2 for each, and the ratios.
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from cull.artifacts import load_npz
from cull.attacks.cw import cw_l2
from cull.attacks.run import CW_STREAM, channels_last, choose, cw_rows
from cull.models import load_checkpoint, to_float
from cull.params import Cw
from cull.training import predict_logits


def attack(model, x, rows, idx, args, precision="float32", tolerance=0.0):
    res = cw_l2(
        model, to_float(torch.as_tensor(x[rows["cw_index"][idx]])),
        torch.as_tensor(rows["cw_source"][idx]), torch.as_tensor(rows["cw_target"][idx]),
        kappa=torch.as_tensor(rows["cw_kappa"][idx], dtype=torch.float32),
        steps=args.steps, search_steps=args.search_steps,
        precision=precision, search_tolerance=tolerance,
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
    ap.add_argument("--tolerance", type=float, default=Cw().search_tolerance, help="search tolerance of the fast run")
    args = ap.parse_args()
    data = load_npz(args.data, ("test_x", "test_y"))
    model, _ = load_checkpoint(args.model)
    x, y = data["test_x"], data["test_y"]
    correct = np.flatnonzero(predict_logits(model, x, device=torch.device("cpu")).argmax(1).numpy() == y)
    index = choose(correct, args.images, seed=0, stream=CW_STREAM, what="--images")
    rows = cw_rows(index, y[index], args.kappas, 10)
    m = len(rows["cw_index"])

    fast = channels_last(load_checkpoint(args.model)[0])
    settings = {"float32, every step": ("float32", 0.0), "bfloat16, every step": ("bfloat16", 0.0),
                f"bfloat16, tolerance {args.tolerance:g}": ("bfloat16", args.tolerance)}
    runs = {}
    for name, (precision, tolerance) in settings.items():
        start = time.perf_counter()
        success, l2 = attack(fast, x, rows, slice(None), args, precision, tolerance)
        runs[f"batched {name}"] = time.perf_counter() - start, success, l2

    loop_rows = np.arange(min(args.loop_rows, m))
    start = time.perf_counter()
    loop = [attack(model, x, rows, slice(i, i + 1), args) for i in loop_rows]
    loop_s = (time.perf_counter() - start) / len(loop_rows) * m  # scaled to all m rows
    loop_success = np.concatenate([s for s, _ in loop])
    loop_l2 = np.concatenate([d for _, d in loop])

    print(f"C&W L2, {m} rows ({args.images} images x 9 targets x {len(args.kappas)} kappas), "
          f"{args.steps} iterations x {args.search_steps} search steps, {torch.get_num_threads()} threads")
    exact_s, exact_ok, exact_l2 = runs["batched float32, every step"]
    for name, (seconds, success, l2) in runs.items():
        both = success & exact_ok
        ratio = l2[both] / exact_l2[both]
        quality = (f"vs float32 every step: x{l2[both].mean() / exact_l2[both].mean():.4f} "
                   f"(rows {ratio.min():.3f} to {ratio.max():.3f})" if both.any() else "no row fooled by both")
        print(f"{name:34s} {seconds:7.1f} s  {m / seconds:6.3f} examples/s  success {success.mean():.3f}  "
              f"mean L2 {np.nanmean(l2) if success.any() else float('nan'):.4f}  {quality}, "
              f"{exact_s / seconds:.2f}x faster")
    print(f"{'loop float32, every step':34s} {loop_s:7.1f} s  {m / loop_s:6.3f} examples/s  "
          f"(measured on {len(loop_rows)} rows, scaled)")
    fastest = min(seconds for seconds, _, _ in runs.values())
    print(f"speed-up over the loop: batched float32 {loop_s / exact_s:.1f}x, fastest batched {loop_s / fastest:.1f}x")
    print(f"on the {len(loop_rows)} rows the loop ran: success {exact_ok[loop_rows].mean():.2f} vs "
          f"{loop_success.mean():.2f}, mean L2 {np.nanmean(exact_l2[loop_rows]):.4f} vs {np.nanmean(loop_l2):.4f} "
          "(batched float32 vs loop)")
    per_135 = ", ".join(f"{name.removeprefix('batched ')} {seconds / m * 135:.0f} s"
                        for name, (seconds, _, _) in runs.items())
    print(f"paper-set target: <= 140 s for 135 rows; this run per 135 rows: {per_135}")


if __name__ == "__main__":
    main()
