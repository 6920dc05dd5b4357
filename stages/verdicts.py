"""Stage verdicts: each claim of the paper, decided by a stated rule on the aggregate's intervals.

    python stages/verdicts.py --aggregate metrics/aggregate.json --out metrics/verdicts.json
"""
import argparse

from cull.artifacts import load_json, save_json
from cull.runtime import run_stage
from cull.schema import check_aggregate
from cull.verdicts import verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--aggregate", required=True, help="metrics/aggregate.json")
    parser.add_argument("--out", required=True, help="verdicts JSON to write")
    args = parser.parse_args()
    result = verdicts(check_aggregate(load_json(args.aggregate), args.aggregate))
    save_json(args.out, result)
    print("verdicts: " + ", ".join(f"{cid} {v['verdict']}" for cid, v in result.items()))


if __name__ == "__main__":
    run_stage(main)
