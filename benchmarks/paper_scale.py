"""Run (part of) the paper-scale preset, time every stage, and keep its results (issue 12, item 6).

    python benchmarks/paper_scale.py --out benchmarks/results/paper_scale -- -S cw.n=15 -S igsm.n=10000 ...
    python benchmarks/paper_scale.py --out DIR --from-log LOG     # results of a run already done

Meant for a scratch clone (it runs `dvc exp run` in the workspace it is started
in, with the `-S` overrides after `--`, and changes that workspace's params).
Every line the run prints is copied to stdout and to --log (benchmarks/out/paper_scale.log) with the
wall-clock time in front, so each stage's time is the time from its
"Running stage" line to the next stage's (DVC's own bookkeeping between them
included). Stages that DVC skips or restores take no time and get no row.

It writes into <out>: stage_times.csv (stage, seconds; rows of an earlier run
into the same folder are kept, so adding model rows in a second run keeps the
first run's times), the run's params.yaml and dvc.lock, metrics/aggregate.json,
metrics/verdicts.json and report/report.md as they stand after the run, and
prints one line: how many stages ran, in how long, and the verdict per claim.
"""
from __future__ import annotations

import argparse
import csv
import re
import shutil
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from cull.artifacts import atomic_path, load_json, save_csv

STAMP = "%Y-%m-%dT%H:%M:%S"
RUNNING = re.compile(r"Running stage '([^']+)'")
KEPT = ("params.yaml", "dvc.lock", "metrics/aggregate.json", "metrics/verdicts.json", "report/report.md")


def stage_times(lines: list[str]) -> list[dict]:
    """[{stage, seconds}] from log lines that start with a time stamp (STAMP, or HH:MM:SS, which may wrap
    past midnight): each stage runs from its "Running stage" line to the next one, or to the last line."""
    marks, last, day = [], None, 0.0
    for line in lines:
        stamp, _, text = line.partition(" ")
        try:
            t = datetime.strptime(stamp, STAMP).timestamp()
        except ValueError:
            try:
                hms = datetime.strptime(stamp, "%H:%M:%S")
            except ValueError:
                continue
            t = hms.hour * 3600 + hms.minute * 60 + hms.second + day
            if last is not None and t < last:  # past midnight
                day += 86400
                t += 86400
        last = t
        found = RUNNING.search(text)
        if found:
            marks.append((found.group(1), t))
    if last is None:
        return []
    ends = [t for _, t in marks[1:]] + [last]
    return [{"stage": name, "seconds": int(round(end - start))} for (name, start), end in zip(marks, ends)]


def merge_times(path: Path, rows: list[dict]) -> list[dict]:
    """An earlier run's rows in `path`, then this run's (a stage that ran again replaces its old row)."""
    old = []
    if path.exists():
        with open(path, newline="") as f:
            old = [{"stage": r["stage"], "seconds": int(r["seconds"])} for r in csv.DictReader(f)]
    new = {r["stage"] for r in rows}
    return [r for r in old if r["stage"] not in new] + rows


def run(overrides: list[str], log: Path) -> tuple[int, list[str]]:
    """`dvc exp run OVERRIDES`, every output line stamped, to stdout and `log`."""
    lines = []
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a", encoding="utf-8") as out:
        proc = subprocess.Popen(["dvc", "exp", "run", *overrides], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1)
        for raw in proc.stdout:
            for part in raw.replace("\r", "\n").splitlines():  # tqdm redraws with \r
                if part.strip():
                    line = f"{time.strftime(STAMP)} {part}"
                    lines.append(line)
                    print(line, flush=True)
                    out.write(line + "\n")
                    out.flush()  # a stopped run keeps its log
        return proc.wait(), lines


def keep(out: Path) -> None:
    """Copy the run's params, lock and results into `out` (each file replaced whole)."""
    for name in KEPT:
        if Path(name).exists():
            target = out / Path(name).name
            with atomic_path(target) as tmp:
                shutil.copyfile(name, tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/paper_scale"))
    ap.add_argument("--log", type=Path, default=Path("benchmarks/out/paper_scale.log"), help="the stamped run log")
    ap.add_argument("--from-log", type=Path, default=None, help="take the stage times from this log; run nothing")
    ap.add_argument("overrides", nargs="*", help="after --: the -S overrides of `dvc exp run`")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_log:
        rc, lines = 0, args.from_log.read_text(encoding="utf-8", errors="replace").replace("\r", "\n").splitlines()
    else:
        rc, lines = run(args.overrides, args.log)
    times = stage_times(lines)
    save_csv(args.out / "stage_times.csv", merge_times(args.out / "stage_times.csv", times))
    keep(args.out)
    verdicts = load_json(args.out / "verdicts.json") if (args.out / "verdicts.json").exists() else {}
    summary = ", ".join(f"{k} {v['verdict']}" for k, v in verdicts.items())
    print(f"paper_scale: {'dvc exp run exited ' + str(rc) + '; ' if rc else ''}{len(times)} stages ran in "
          f"{sum(t['seconds'] for t in times)} s; verdicts: {summary or 'none yet'} -> {args.out}")
    sys.exit(rc)


if __name__ == "__main__":
    main()
