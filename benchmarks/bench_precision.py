"""bfloat16 against float32 training, side by side over seeds: the time saved and whether the numbers move.

    python benchmarks/bench_precision.py [--params params.yaml] [--seeds 0 1 2]

For each seed and each precision it trains the headline chain as the pipeline
does, from the workspace's data/dataset.npz and data/fonts.npz and with
params.yaml's recipe: the canonical model, the unsanitized model, the headline
filter on the canonical scores, and the sanitized model; then it calibrates the
KL threshold tau on the validation normals. The two precisions run interleaved
(seed by seed), so drift in machine load hits both alike.

The rule of issue 11: bfloat16 may become the default only if, over the seeds,
the mean of each of its numbers lies inside float32's 95% t interval over the
same seeds. The last lines print that check and the wall-time ratio.
About 25 minutes on 2 CPU cores for 3 seeds.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np
import torch

from cull import params
from cull.artifacts import load_npz
from cull.detection import calibrate_threshold, divergence
from cull.runtime import pick_device
from cull.scoring import log_confidence, sanitize
from cull.stats import t_interval
from cull.training import holdout_split, predict_logits, train_model

PRECISIONS = ("float32", "bfloat16")
NUMBERS = ("canonical holdout acc", "canonical acc on pool", "kept", "unsanitized test acc",
           "sanitized test acc", "tau")


def chain(p: dict, data: dict, fonts: dict, *, seed: int, precision: str, device) -> tuple[dict, dict]:
    """One seed's headline chain at one precision: (numbers, seconds per model)."""
    train = dataclasses.replace(p["train"], precision=precision)
    images = fonts["images"][:, None]
    tr, te = holdout_split(fonts["face"], test_fraction=p["fonts"].test_fraction,
                           by_group=p["fonts"].split == "face", seed=p["base"].seed)
    seconds, out = {}, {}
    start = time.perf_counter()
    canonical, hist = train_model(images[tr], fonts["labels"][tr], train=train, epochs=train.canonical_epochs,
                                  seed=seed, device=device, eval_images=images[te], eval_labels=fonts["labels"][te],
                                  desc=f"{precision} canonical")
    seconds["canonical"] = time.perf_counter() - start
    out["canonical holdout acc"] = hist[-1]["eval_acc"]
    x, y = data["train_x"], data["train_y"]
    logits = predict_logits(canonical, x, device=device)
    out["canonical acc on pool"] = float((logits.argmax(1).numpy() == y).mean())
    if p["method"] != "canonical":
        raise SystemExit("error: params.yaml: method: this benchmark runs the canonical headline chain")
    kept, summary = sanitize(log_confidence(logits, y), y, threshold=p["threshold"])
    out["kept"] = summary["size"]
    start = time.perf_counter()
    unsanitized, hist = train_model(x, y, train=train, epochs=train.epochs, seed=seed, device=device,
                                    eval_images=data["test_x"], eval_labels=data["test_y"],
                                    desc=f"{precision} unsanitized")
    seconds["unsanitized"] = time.perf_counter() - start
    out["unsanitized test acc"] = hist[-1]["eval_acc"]
    start = time.perf_counter()
    sanitized, hist = train_model(x[kept], y[kept], train=train, epochs=train.epochs, seed=seed, device=device,
                                  eval_images=data["test_x"], eval_labels=data["test_y"],
                                  desc=f"{precision} sanitized")
    seconds["sanitized"] = time.perf_counter() - start
    out["sanitized test acc"] = hist[-1]["eval_acc"]
    kl = divergence(predict_logits(unsanitized, data["val_x"], device=device),
                    predict_logits(sanitized, data["val_x"], device=device), kind=p["detect"].divergence)
    out["tau"] = calibrate_threshold(kl, acceptance=p["detect"].acceptance)
    return out, seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/dataset.npz")
    ap.add_argument("--fonts", default="data/fonts.npz")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    p = params.load(args.params, "base", "train", "fonts", "detect", "threshold", "method")
    device = pick_device(p["base"].device)
    data = load_npz(args.data, ("train_x", "train_y", "val_x", "val_y", "test_x", "test_y"))
    fonts = load_npz(args.fonts, ("images", "labels", "face"))
    results = {k: [] for k in PRECISIONS}
    times = {k: [] for k in PRECISIONS}
    for seed in args.seeds:
        for precision in PRECISIONS:
            numbers, seconds = chain(p, data, fonts, seed=seed, precision=precision, device=device)
            results[precision].append(numbers)
            times[precision].append(seconds)
            print(f"seed {seed} {precision:8s} " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items())
                  + "; training " + ", ".join(f"{k} {v:.0f}s" for k, v in seconds.items()), flush=True)
    print(f"\n{torch.get_num_threads()} threads, {device}, recipe {p['train'].optimizer} lr {p['train'].lr} "
          f"{p['train'].epochs} epochs (canonical {p['train'].canonical_epochs}), "
          f"headline {p['method']} >= {p['threshold']!r}, seeds {args.seeds}")
    print(f"{'number':24s} {'float32 mean [95% t interval]':34s} {'bfloat16 mean':>14s}  inside")
    inside_all = True
    for key in NUMBERS:
        ref = [r[key] for r in results["float32"]]
        low = [r[key] for r in results["bfloat16"]]
        lo, hi = t_interval(ref)
        mean_low = float(np.mean(low))
        inside = lo is not None and lo <= mean_low <= hi
        inside_all &= inside
        interval = f"{np.mean(ref):.4g} [{lo:.4g}, {hi:.4g}]" if lo is not None else f"{np.mean(ref):.4g} [n/a]"
        print(f"{key:24s} {interval:34s} {mean_low:14.4g}  {'yes' if inside else 'NO'}")
    # The median over seeds of the per-seed ratio, so one seed run beside other load does not skew it.
    for model in ("canonical", "unsanitized", "sanitized"):
        ratios = [a[model] / b[model] for a, b in zip(times["float32"], times["bfloat16"])]
        print(f"time {model:12s} float32 {np.median([t[model] for t in times['float32']]):6.0f}s  bfloat16 "
              f"{np.median([t[model] for t in times['bfloat16']]):6.0f}s  (medians)  float32/bfloat16 "
              f"{np.median(ratios):.2f} (per seed {', '.join(f'{r:.2f}' for r in ratios)})")
    speedup = np.median([sum(a.values()) / sum(b.values()) for a, b in zip(times["float32"], times["bfloat16"])])
    print(f"bfloat16 training: {speedup:.2f}x the float32 speed; numbers inside the float32 intervals: "
          f"{'all' if inside_all else 'NOT all'} -> {'may become' if inside_all else 'must not become'} the default")


if __name__ == "__main__":
    main()
