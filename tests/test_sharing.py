"""Sharing results through a DVC remote, on the real tiny pipeline: a second clone pulls instead of recomputing."""
import subprocess

import pytest

from conftest import dvc, ran_stages, tiny_params, write_params

GIT = ["git", "-c", "user.name=cull tests", "-c", "user.email=tests@cull.invalid"]


def git(repo, *args) -> str:
    return subprocess.run([*GIT, *args], cwd=repo, check=True, text=True, capture_output=True).stdout


@pytest.mark.slow
def test_remote_round_trip_reruns_nothing(tiny_repo, tmp_path):
    """Clone A pushes; a fresh clone B pulls, and then `dvc repro` runs nothing and the report is byte-identical."""
    remote = tmp_path / "remote"
    dvc(tiny_repo, "remote", "add", "-f", "-d", "shared", str(remote))
    git(tiny_repo, "add", "-A")
    git(tiny_repo, "commit", "-q", "--allow-empty", "-m", "tiny pipeline, reproduced")
    pushed = dvc(tiny_repo, "push").stdout
    assert "pushed" in pushed or "Everything is up to date" in pushed
    clone = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(tiny_repo), str(clone)], check=True)
    assert not (clone / "report/report.md").exists() and not (clone / "models/unsanitized/seed-0.pt").exists()
    dvc(clone, "pull")
    assert ran_stages(dvc(clone, "repro").stdout) == set()
    assert "up to date" in dvc(clone, "status").stdout
    for path in ("report/report.md", "models/unsanitized/seed-0.pt", "data/models/headline/seed-0/attacks.npz"):
        assert (clone / path).read_bytes() == (tiny_repo / path).read_bytes(), path
    diff = dvc(clone, "metrics", "diff", "HEAD", "--json")
    assert diff.returncode == 0 and diff.stdout.strip() in ("{}", "")  # nothing differs from what A committed


@pytest.mark.slow
def test_run_cache_restores_a_threshold_tried_before(tiny_repo, tmp_path):
    """A threshold trained once, then changed away from, is restored from DVC's run cache, not retrained: in the
    same clone, and in a fresh clone that shares the cache folder (DVC's shared-cache set-up).

    Fresh clone B's dvc.lock never saw that threshold: only the run cache knows it. (Through a remote,
    `dvc push --run-cache` carries the run records but not the outputs they name, so a clone that pulls
    from a remote recomputes such a threshold; README, Sharing and scaling.)
    """
    tried = {**tiny_params(), "threshold": 0.6}
    try:
        write_params(tiny_repo, tried)
        assert "train@headline-0" in ran_stages(dvc(tiny_repo, "repro", "train@headline-0").stdout)
    finally:
        write_params(tiny_repo, tiny_params())
    back = dvc(tiny_repo, "repro", "train@headline-0")  # changed back: restored from the run cache
    assert "train@headline-0" not in ran_stages(back.stdout), back.stdout
    git(tiny_repo, "add", "-A")
    git(tiny_repo, "commit", "-q", "--allow-empty", "-m", "tiny pipeline, and a threshold tried")
    clone = tmp_path / "b"
    subprocess.run(["git", "clone", "-q", str(tiny_repo), str(clone)], check=True)
    dvc(clone, "cache", "dir", str(tiny_repo / ".dvc" / "cache"))
    dvc(clone, "checkout")
    write_params(clone, tried)
    out = dvc(clone, "repro", "train@headline-0").stdout
    assert not ran_stages(out) & {"filter@headline-0", "train@headline-0"}, out
    assert "Stage 'train@headline-0' is cached" in out
    assert (clone / "models/headline/seed-0.pt").is_file()


QUEUE_JOBS = 2  # workers for `dvc queue start`; README "Sharing and scaling" gives the measured safe count
UPSTREAM = ("mnist", "prepare", "fonts", "canonical@", "unsanitized@", "score@", "tables@", "attack_unsanitized@",
            "alpha_sweep@", "igsm_alpha_unsanitized@")


def queue_status(repo) -> dict[str, str]:
    """Experiment name -> status (Queued, Running, Success, Failed) from `dvc queue status`."""
    out = dvc(repo, "queue", "status").stdout
    rows = [line.split() for line in out.splitlines()[1:] if line.strip() and not line.startswith("Worker")]
    return {row[1]: row[-1] for row in rows if len(row) >= 4}


@pytest.mark.slow
def test_queue_runs_a_grid_without_recomputing_upstream(tiny_repo):
    """Two thresholds x two seeds through `dvc exp run --queue` and `dvc queue start -j QUEUE_JOBS`."""
    import time

    git(tiny_repo, "add", "-A")
    git(tiny_repo, "commit", "-q", "--allow-empty", "-m", "baseline for the queue")
    names = []
    for threshold in (0.5, 0.8):
        for seed in (0, 1):
            name = f"q-t{str(threshold).replace('.', 'p')}-s{seed}"
            dvc(tiny_repo, "exp", "run", "--queue", "--name", name, "-S", f"threshold={threshold}",
                "-S", f"seeds=[{seed}]")
            names.append(name)
    # no pipe: the queue's daemon outlives this call, and a worker that misses its own shutdown (dvc-task's
    # monitor can ask a busy worker to stop, seen once in CI: the worker finished its task and never exited)
    # would keep a captured pipe open, and the test waiting, for ever; the status loop below has a deadline
    dvc(tiny_repo, "queue", "start", "-j", str(QUEUE_JOBS), capture=False)
    deadline = time.monotonic() + 1800
    while True:
        status = queue_status(tiny_repo)
        if all(status.get(n) in ("Success", "Failed") for n in names) or time.monotonic() > deadline:
            break
        time.sleep(5)
    dvc(tiny_repo, "queue", "stop", "--kill", check=False, capture=False)  # --kill: a worker stuck as above
    logs = {n: dvc(tiny_repo, "queue", "logs", n, check=False).stdout for n in names}
    assert all(status.get(n) == "Success" for n in names), (status, {n: logs[n][-2000:] for n in names})
    for name, log in logs.items():
        ran = ran_stages(log)
        seed = name[-1]
        # the headline model of this threshold is trained, or restored from DVC's run cache when an earlier
        # test already trained it (the threshold test runs 0.5): either way, this task dealt with it
        assert f"train@headline-{seed}" in ran or f"Stage 'train@headline-{seed}' is cached" in log, (name, sorted(ran))
        assert not [s for s in ran if s.startswith(UPSTREAM)], (name, sorted(ran))  # shared stages come from cache
    shown = dvc(tiny_repo, "exp", "show", "--json").stdout
    assert all(n in shown for n in names)
