"""Self-sanitization retention against training epochs, for Carlini's training recipe (issue 12).

    python benchmarks/retention_curve.py [--epochs 50] [--seeds 0 1 2] [--out benchmarks/results/retention]

How many training images pass a self-sanitization threshold is a fingerprint of
how long a model was trained. This one-off measurement trains the unsanitized
model with the recipe of Carlini's nn_robust_attacks/train_models.py (SGD, lr
0.01, Nesterov momentum 0.9, Keras inverse-time decay 1e-6 per step, batch 128)
on the workspace's training pool (data/dataset.npz), once per seed, and after
every epoch scores the pool with the model itself: the share kept at each
threshold of params `tables.self`, the class counts at the highest one, and the
test accuracy.

It writes <out>.csv (one row per seed and epoch) and <out>.json (per epoch: the
mean over seeds and its 95% t interval), and names the epoch count whose mean
shares lie closest (least squares, in points) to the paper's Table 2. Table 2
reports a set-up quantity, so calibrating the epoch count on it tunes no
outcome. Precision follows params `train.precision`.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from cull import params
from cull.artifacts import load_npz, save_csv, save_json
from cull.report.paper import PAPER_TABLE2, PAPER_TRAIN_SIZE
from cull.runtime import pick_device
from cull.scoring import class_counts, keep_mask, log_confidence
from cull.stats import t_interval
from cull.training import accuracy, predict_logits, train_model

CARLINI_RECIPE = {"optimizer": "sgd", "lr": 0.01, "momentum": 0.9, "nesterov": True, "lr_decay": 1e-6,
                  "batch_size": 128, "weight_decay": 0.0}


def share_key(t: float) -> str:
    return f"share_{t!r}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", default="data/dataset.npz")
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--out", default="benchmarks/results/retention")
    args = ap.parse_args()
    p = params.load(args.params, "base", "train", "tables")
    recipe = dataclasses.replace(p["train"], **CARLINI_RECIPE)
    thresholds = [t for t in p["tables"].self if t > 0]
    device = pick_device(p["base"].device)
    data = load_npz(args.data, ("train_x", "train_y", "test_x", "test_y"))
    x, y = data["train_x"], data["train_y"]
    rows = []
    start = time.perf_counter()
    for seed in args.seeds:
        def probe(epoch, model, seed=seed):
            conf = log_confidence(predict_logits(model, x, device=device), y)
            row = {"seed": seed, "epoch": epoch,
                   "test_acc": accuracy(model, data["test_x"], data["test_y"], device=device)}
            row.update({share_key(t): float(keep_mask(conf, t).mean()) for t in thresholds})
            row["class_counts_top"] = " ".join(map(str, class_counts(y, keep_mask(conf, thresholds[-1]))))
            rows.append(row)
            return {}

        train_model(x, y, train=recipe, epochs=args.epochs, seed=seed, device=device,
                    desc=f"retention seed {seed}", on_epoch=probe)
        # After each seed, so a stopped run keeps what it measured.
        save_csv(f"{args.out}.csv", rows)
        best = summarize(rows, recipe, thresholds, epochs=args.epochs, out=args.out)
    paper = paper_shares(thresholds)
    shares = ", ".join(f"≥{t!r} {100 * best[share_key(t)]['mean']:.1f}% (paper {100 * paper[t]:.1f})"
                       for t in thresholds)
    print(f"retention: {len(args.seeds)} seeds x {args.epochs} epochs in {time.perf_counter() - start:.0f}s; "
          f"closest to Table 2 at {best['epoch']} epochs ({best['rms_points_from_paper']:.1f} points rms): "
          f"{shares}; test acc {100 * best['test_acc']['mean']:.2f}% -> {args.out}.json")


def paper_shares(thresholds: list[float]) -> dict[float, float]:
    return {t: PAPER_TABLE2[t] / PAPER_TRAIN_SIZE["mnist"] for t in thresholds}


def summarize(rows: list[dict], recipe, thresholds: list[float], *, epochs: int, out: str) -> dict:
    """Per epoch: mean and t interval over the seeds measured so far; writes <out>.json; returns the closest epoch."""
    paper = paper_shares(thresholds)
    seeds = sorted({r["seed"] for r in rows})
    curve = []
    for epoch in range(1, epochs + 1):
        at = [r for r in rows if r["epoch"] == epoch]
        entry = {"epoch": epoch, "seeds": len(at)}
        for key in ["test_acc"] + [share_key(t) for t in thresholds]:
            values = [r[key] for r in at]
            lo, hi = t_interval(values)
            entry[key] = {"mean": float(np.mean(values)), "lo": lo, "hi": hi}
        entry["rms_points_from_paper"] = float(np.sqrt(np.mean(
            [(100 * (entry[share_key(t)]["mean"] - paper[t])) ** 2 for t in thresholds])))
        curve.append(entry)
    best = min(curve, key=lambda e: e["rms_points_from_paper"])
    save_json(f"{out}.json", {
        "recipe": CARLINI_RECIPE, "precision": recipe.precision, "seeds": seeds, "thresholds": thresholds,
        "paper_table2_share": {repr(t): v for t, v in paper.items()}, "curve": curve,
        "closest_epoch": best["epoch"], "closest_rms_points": best["rms_points_from_paper"],
    })
    return best


if __name__ == "__main__":
    main()
