"""Sharing results through a DVC remote, on the real tiny pipeline: a second clone pulls instead of recomputing."""
import subprocess

import pytest

from conftest import dvc, ran_stages

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
