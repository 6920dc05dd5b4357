"""Stage report: the verdicts, the paper's numbers beside ours with intervals, figures (paper §3).

    python stages/report.py --params params.yaml --aggregate metrics/aggregate.json \
        --verdicts metrics/verdicts.json --metrics metrics --data data \
        --retention benchmarks/results/retention.json \
        --selection benchmarks/results/canonical_selection.json --out report

Formats metrics/aggregate.json and metrics/verdicts.json (never computes an
interval); the figures also read each seed's CDF plot data under --metrics and
the headline model's first-seed archives under --data, and the retention curve
that benchmarks/retention_curve.py measured (committed; not a stage, since it
chose the default epoch count) and the canonical face selections that
benchmarks/canonical_selection.py measured (committed, likewise). Writes report.md,
figures/*.png and threshold_<method>.csv (a DVC plot) under --out.
"""
import argparse
from pathlib import Path

from cull import params
from cull.report import PARAM_KEYS, gather, write_report
from cull.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--aggregate", required=True, help="metrics/aggregate.json")
    parser.add_argument("--verdicts", required=True, help="metrics/verdicts.json")
    parser.add_argument("--metrics", required=True, help="metrics folder (per-seed CDF plot data)")
    parser.add_argument("--data", required=True, help="data folder (models/<headline>/seed-<s>/, fonts_preview.png)")
    parser.add_argument("--retention", required=True, help="benchmarks/results/retention.json")
    parser.add_argument("--selection", required=True, help="benchmarks/results/canonical_selection.json")
    parser.add_argument("--out", required=True, help="report folder to write")
    args = parser.parse_args()
    p = params.load(args.params, *PARAM_KEYS)
    inputs = gather(Path(args.aggregate), Path(args.verdicts), Path(args.metrics), Path(args.data), p,
                    retention=Path(args.retention), selection=Path(args.selection))
    print(write_report(inputs, Path(args.out)))


if __name__ == "__main__":
    run_stage(main)
