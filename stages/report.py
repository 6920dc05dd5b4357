"""Stage report: the paper's numbers beside ours, figures and a list of differences (paper §3).

Reads the metrics folder (never writes to it) and, under the data folder,
attacks/sanitized.npz, detect/sanitized.npz and fonts_preview.png. Writes
report.md, figures/*.png and threshold_<method>.csv (a DVC plot) under --out.
"""
import argparse
from pathlib import Path

from cull import params
from cull.report import PARAM_KEYS, gather, write_report
from cull.runtime import run_stage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", required=True)
    parser.add_argument("--metrics", required=True, help="metrics folder the other stages wrote")
    parser.add_argument("--data", required=True, help="data folder (attacks/, detect/, fonts_preview.png)")
    parser.add_argument("--out", required=True, help="report folder to write")
    args = parser.parse_args()
    p = params.load(args.params, *PARAM_KEYS)
    print(write_report(gather(Path(args.metrics), Path(args.data), p), Path(args.out)))


if __name__ == "__main__":
    run_stage(main)
