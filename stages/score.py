"""Stage score: each training image's confidence on its own label, under both scoring models."""
import argparse

import numpy as np

from cull import params
from cull.artifacts import load_npz, save_json, save_npz
from cull.models import load_checkpoint
from cull.runtime import pick_device, run_stage
from cull.schema import count_of
from cull.scoring import log_confidence
from cull.training import predict_logits


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True)
    ap.add_argument("--canonical", required=True, help="canonical (font) model checkpoint")
    ap.add_argument("--unsanitized", required=True, help="unsanitized model checkpoint")
    ap.add_argument("--out", required=True, help="scores .npz to write")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    p = params.load(args.params, "base")
    device = pick_device(p["base"].device)
    data = load_npz(args.data, ("train_x", "train_y", "train_index"))
    x, y = data["train_x"], data["train_y"]
    self_model, _ = load_checkpoint(args.unsanitized, device, in_channels=x.shape[1])
    self_logits = predict_logits(self_model, x, device=device)
    self_conf = log_confidence(self_logits, y)
    metrics = {"self_train_acc": count_of(self_logits.argmax(1).numpy() == y)}
    canonical, _ = load_checkpoint(args.canonical, device)
    if canonical.config.in_channels == x.shape[1]:
        canonical_logits = predict_logits(canonical, x, device=device)
        canonical_conf = log_confidence(canonical_logits, y)
        metrics["canonical_train_acc"] = count_of(canonical_logits.argmax(1).numpy() == y)
    else:  # fonts are greyscale; the paper does no canonical sanitization on colour SVHN
        canonical_conf = np.full(len(y), np.nan)
        metrics["canonical_train_acc"] = None
    save_npz(args.out, canonical=canonical_conf, self=self_conf, labels=y, train_index=data["train_index"])
    save_json(args.metrics, metrics)
    canonical_acc = metrics["canonical_train_acc"] and f"{metrics['canonical_train_acc']['rate']:.4f}"
    print(f"score: {len(y)} training images; canonical model accuracy on them "
          f"{canonical_acc} (paper 0.88), unsanitized {metrics['self_train_acc']['rate']:.4f}")


if __name__ == "__main__":
    run_stage(main)
