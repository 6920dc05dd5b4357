"""Pipeline overheads and the end-to-end run, in a scratch clone so the workspace is untouched.

    python benchmarks/bench_pipeline.py            # no-op repro time and the rerun scope of a threshold change
    python benchmarks/bench_pipeline.py --full     # also: the default dvc repro from an empty cache,
                                                   # wall time and peak RSS per stage (about 3 hours)

The scratch clone is a `git clone` of this repository's HEAD with the
workspace's own dvc.yaml, params.yaml and dvc.lock copied over it, so it
describes the outputs this machine's cache holds (HEAD's dvc.lock may come
from another machine, whose outputs differ). Without --full it shares this
repository's DVC cache, so `dvc checkout` fills it in seconds; that needs a
finished `dvc repro` here, which is checked first.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}


def run(cmd: list[str], cwd: Path) -> tuple[float, float, str]:
    """Run `cmd`; return (wall seconds, peak RSS in MiB of it and its children, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out[-2000:]}")
    return wall, usage.ru_maxrss / 1024, out  # ru_maxrss is in KiB on Linux


def stage_order(repo: Path) -> list[str]:
    from dvc.repo import Repo

    import networkx as nx

    with Repo(str(repo)) as dvc_repo:
        graph = dvc_repo.index.graph
        return [stage.name for stage in reversed(list(nx.topological_sort(graph)))
                if stage.cmd]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also time the default repro from an empty cache")
    args = ap.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="cull-bench-"))
    repo = scratch / "repo"
    try:
        subprocess.run(["git", "clone", "-q", str(ROOT), str(repo)], check=True)
        for name in ("dvc.yaml", "params.yaml", "dvc.lock"):  # the workspace as it is, not HEAD
            if (ROOT / name).is_file():
                shutil.copy(ROOT / name, repo / name)
        if args.full:
            (repo / ".dvc/config.local").write_text(f"[cache]\n    dir = {scratch / 'cache'}\n")
            total = 0.0
            print(f"{'stage':28s} {'wall s':>8s} {'peak RSS MiB':>13s}")
            for stage in stage_order(repo):
                wall, rss, _ = run([str(BIN / "dvc"), "repro", "--single-item", stage], repo)
                total += wall
                print(f"{stage:28s} {wall:8.1f} {rss:13.0f}")
            print(f"{'total':28s} {total:8.1f}   (target <= 2700 s on 2 cores, 3 seeds)")
        else:
            status = subprocess.run([str(BIN / "dvc"), "status", "-q"], cwd=ROOT, env=ENV)
            if status.returncode != 0:
                sys.exit("bench_pipeline: the workspace is not up to date with dvc.lock; run `dvc repro` first "
                         "(or use --full, which needs no cache)")
            (repo / ".dvc/config.local").write_text(f"[cache]\n    dir = {ROOT / '.dvc/cache'}\n")
            run([str(BIN / "dvc"), "checkout", "-q"], repo)
        wall, _, out = run([str(BIN / "dvc"), "repro"], repo)
        print(f"no-op dvc repro: {wall:.2f} s (target < 3 s); says: {out.strip().splitlines()[-1]}")
        # The scratch clone's params.yaml is ours to edit: the same change `-S threshold=0.999` makes.
        params = (repo / "params.yaml").read_text()
        (repo / "params.yaml").write_text(params.replace("\nthreshold: 0.9999 ", "\nthreshold: 0.999 ", 1))
        wall, _, out = run([str(BIN / "dvc"), "repro", "--dry"], repo)
        reran = [line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")]
        print(f"threshold 0.9999 -> 0.999, dvc repro --dry: {wall:.2f} s; stages whose own inputs changed: "
              f"{reran} (their outputs then rerun what lies downstream of them)")
        upstream = {name for name in reran if name.split("@")[0] in
                    ("mnist", "prepare", "fonts", "canonical", "unsanitized", "score", "tables", "attack_unsanitized")}
        print(f"upstream stages rerun: {sorted(upstream) or 'none'} (target: none)")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
