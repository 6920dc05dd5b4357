"""Stage aggregate: every per-seed metric pooled over seeds, with its 95% interval and n.

    python stages/aggregate.py --params params.yaml --metrics metrics --out metrics/aggregate.json

Reads params seeds, threshold, method, models, adaptive_models and alpha_models, and under --metrics each
seed's files of every model row, the unsanitized and canonical models, scores
and tables (cull.schema). Writes one JSON (cull.aggregate) and a summary line.
"""
import argparse

from cull import params
from cull.aggregate import aggregate
from cull.artifacts import save_json
from cull.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--metrics", required=True, help="metrics folder the per-seed stages wrote")
    parser.add_argument("--out", required=True, help="aggregate JSON to write")
    args = parser.parse_args()
    p = params.load(args.params, "seeds", "models", "adaptive_models", "alpha_models")
    result = aggregate(args.metrics, seeds=p["seeds"], rows=p["models"], adaptive_models=p["adaptive_models"],
                       alpha_models=p["alpha_models"])
    save_json(args.out, result)
    head = result["models"][result["headline"]]
    acc = head["train"]["test_acc"]
    print(f"aggregate: {len(p['models'])} model row(s) + unsanitized over seeds {p['seeds']}; headline "
          f"{head['label']} test acc {100 * acc['mean']:.2f}% [{100 * acc['lo']:.2f}, {100 * acc['hi']:.2f}] "
          f"(n={acc['n']}) -> {args.out}")


if __name__ == "__main__":
    run_stage(main)
