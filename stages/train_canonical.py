"""Stage train_canonical: train the canonical model on rendered font digits (paper §3.2)."""
import argparse
import time
from dataclasses import asdict

from cull import params
from cull.artifacts import load_npz, save_csv, save_json
from cull.models import save_checkpoint
from cull.runtime import pick_device, run_stage
from cull.schema import count_from_rate
from cull.training import holdout_split, train_model


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    ap.add_argument("--fonts", required=True, help="fonts .npz from the fonts stage")
    ap.add_argument("--out", required=True, help="checkpoint to write")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--curve", required=True, help="per-epoch CSV (DVC plot)")
    args = ap.parse_args()
    p = params.load(args.params, "base", "fonts", "train")
    fonts = load_npz(args.fonts, ("images", "labels", "face"))
    images = fonts["images"][:, None]  # (M, 28, 28) -> (M, 1, 28, 28)
    train_idx, test_idx = holdout_split(
        fonts["face"], test_fraction=p["fonts"].test_fraction,
        by_group=p["fonts"].split == "face", seed=p["base"].seed,
    )
    device = pick_device(p["base"].device)
    start = time.time()
    model, history = train_model(
        images[train_idx], fonts["labels"][train_idx], train=p["train"],
        epochs=p["train"].canonical_epochs, seed=args.seed, device=device,
        eval_images=images[test_idx], eval_labels=fonts["labels"][test_idx], desc="canonical",
    )
    seconds = time.time() - start
    holdout = history[-1]["eval_acc"]
    metrics = {
        "holdout_acc": count_from_rate(holdout, len(test_idx)), "train_size": len(train_idx),
        "holdout_size": len(test_idx), "epochs": p["train"].canonical_epochs,
    }
    save_checkpoint(args.out, model, meta={"role": "canonical", "train": asdict(p["train"]), "seed": args.seed, "metrics": metrics})
    save_json(args.metrics, metrics)
    save_csv(args.curve, history)
    print(f"canonical: font hold-out acc {holdout:.4f} (paper 0.987) on {len(test_idx)} renders, "
          f"trained on {len(train_idx)}, {seconds:.0f}s")


if __name__ == "__main__":
    run_stage(main)
