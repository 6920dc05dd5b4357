"""Stage tables: sanitized-set size and class composition at every listed threshold (Tables 1-3, Fig. 11),
and each class's mean confidence under each scoring model."""
import argparse

import numpy as np

from cull import params
from cull.artifacts import load_npz, save_json
from cull.runtime import run_stage
from cull.scoring import check_scores, mean_confidence, set_sizes


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--scores", required=True)
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    p = params.load(args.params, "tables")
    scores = load_npz(args.scores, ("canonical", "self", "labels"))
    labels = scores["labels"]
    out = {"total": int(len(labels)), "mean_confidence": {}}
    for method in ("canonical", "self"):
        if method == "canonical" and np.isnan(scores[method]).all():
            out[method] = out["mean_confidence"][method] = None  # no canonical model for this dataset (SVHN: colour)
            continue
        log_conf = check_scores(scores, method, args.scores)
        out[method] = set_sizes(log_conf, labels, getattr(p["tables"], method))
        out["mean_confidence"][method] = mean_confidence(log_conf, labels)
    save_json(args.metrics, out)
    sizes = {m: [r["size"] for r in out[m]] for m in ("canonical", "self") if out[m]}
    print(f"tables: of {len(labels)} training images, kept {sizes}")


if __name__ == "__main__":
    run_stage(main)
