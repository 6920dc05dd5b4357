"""Stage filter: drop training images whose confidence is below the threshold (paper §2.2)."""
import argparse

import numpy as np

from cull import params
from cull.artifacts import load_npz, save_json, save_npz
from cull.runtime import run_stage
from cull.scoring import sanitize


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scores", required=True)
    ap.add_argument("--method", required=True, choices=params.METHODS)
    ap.add_argument("--threshold", required=True, type=float)
    ap.add_argument("--out", required=True, help="kept indices .npz")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    threshold = params.check_threshold(args.threshold, "threshold")
    scores = load_npz(args.scores, ("canonical", "self", "labels"))
    if np.isnan(scores[args.method]).any():
        raise ValueError(f"{args.scores}: no {args.method} scores for this dataset "
                         "(canonical sanitization needs greyscale digits; use method: self)")
    kept, summary = sanitize(scores[args.method], scores["labels"], threshold=threshold)
    save_npz(args.out, kept=kept, method=np.array(args.method), threshold=np.array(threshold))
    save_json(args.metrics, {"method": args.method, **summary})
    print(f"filter: {args.method} >= {threshold!r} keeps {summary['size']} of {summary['total']} "
          f"({summary['fraction']:.1%})")


if __name__ == "__main__":
    run_stage(main)
