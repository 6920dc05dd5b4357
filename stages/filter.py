"""Stage filter: drop training images whose confidence is below the row's threshold (paper §2.2).

    python stages/filter.py --params params.yaml --model NAME --scores data/scores/seed-S.npz \
        --out data/models/NAME/seed-S/kept.npz --metrics metrics/models/NAME/seed-S/filter.json

The row NAME of params `models` gives the method and threshold; the row
"headline" takes the top-level `threshold` and `method`. A random row (claim
C8's control) keeps a random subset, seeded by --seed, with the class counts of
the row it mirrors.
"""
import argparse

import numpy as np

from cull import params
from cull.artifacts import load_npz, save_json, save_npz
from cull.runtime import run_stage
from cull.scoring import check_scores, random_like, sanitize


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--model", required=True, help="row name of params models")
    ap.add_argument("--seed", type=int, required=True, help="model seed (a random row's draw)")
    ap.add_argument("--scores", required=True)
    ap.add_argument("--out", required=True, help="kept indices .npz")
    ap.add_argument("--metrics", required=True)
    args = ap.parse_args()
    rows = {row.name: row for row in params.load(args.params, "models")["models"]}
    if args.model not in rows:
        raise params.ParamsError(f"{args.params}: models: no row {args.model!r} (rows: {', '.join(rows)})")
    row = rows[args.model]
    scores = load_npz(args.scores, ("canonical", "self", "labels"))
    if row.method == "random":
        confidence = check_scores(scores, row.like_method, args.scores)
        kept, summary = random_like(confidence, scores["labels"], threshold=row.threshold, seed=args.seed)
    else:
        confidence = check_scores(scores, row.method, args.scores)
        kept, summary = sanitize(confidence, scores["labels"], threshold=row.threshold)
    save_npz(args.out, kept=kept, method=np.array(row.method), threshold=np.array(row.threshold))
    save_json(args.metrics, {"model": row.name, "method": row.method, **({"like": row.like} if row.like else {}), **summary})
    print(f"filter {row.name}: {row.label} keeps {summary['size']} of {summary['total']} ({summary['fraction']:.1%})")


if __name__ == "__main__":
    run_stage(main)
