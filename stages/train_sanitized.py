"""Stage train_sanitized: the same recipe as the unsanitized model, on the kept images only."""
import argparse
import time
from dataclasses import asdict

from cull import params
from cull.artifacts import load_npz, save_csv, save_json
from cull.models import save_checkpoint
from cull.runtime import pick_device, run_stage
from cull.schema import count_from_rate
from cull.training import train_model


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seed", type=int, required=True, help="model seed (one of params seeds)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--kept", required=True, help="kept indices .npz from the filter stage")
    ap.add_argument("--out", required=True, help="checkpoint to write")
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--curve", required=True, help="per-epoch CSV (DVC plot)")
    args = ap.parse_args()
    p = params.load(args.params, "base", "train")
    data = load_npz(args.data, ("train_x", "train_y", "test_x", "test_y"))
    kept = load_npz(args.kept, ("kept", "method", "threshold"))
    idx = kept["kept"]
    method, threshold = str(kept["method"]), float(kept["threshold"])
    start = time.time()
    model, history = train_model(
        data["train_x"][idx], data["train_y"][idx], train=p["train"], epochs=p["train"].epochs,
        seed=args.seed, device=pick_device(p["base"].device),
        eval_images=data["test_x"], eval_labels=data["test_y"], desc=f"{method}-{threshold!r}",
    )
    metrics = {"method": method, "threshold": threshold, "test_acc": count_from_rate(history[-1]["eval_acc"], len(data["test_y"])),
               "train_size": int(len(idx)), "epochs": p["train"].epochs}
    meta = {"role": "sanitized", "method": method, "threshold": threshold,
            "train": asdict(p["train"]), "seed": args.seed, "metrics": metrics}
    save_checkpoint(args.out, model, meta=meta)
    save_json(args.metrics, metrics)
    save_csv(args.curve, history)
    print(f"sanitized ({method} >= {threshold!r}): test acc {metrics['test_acc']['rate']:.4f} on "
          f"{len(idx)} training images, {time.time() - start:.0f}s")


if __name__ == "__main__":
    run_stage(main)
