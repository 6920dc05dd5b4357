"""What the report reads: every model's metrics files under ``metrics/``, gathered once.

`gather` returns an `Inputs`; a file that is absent is None there, and the
section that needs it says "Not run". `_get` and `_by_float` read the nested
metrics JSON for every section.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from cull.artifacts import load_json
from cull.params import SweepItem
from cull.plots.figures import threshold_label

METHODS = ("canonical", "self")
PARAM_KEYS = ("threshold", "method", "sweep", "dataset", "base", "split", "igsm", "cw", "detect",
              "train", "tables", "fonts")  # what the report stage reads (dvc.yaml lists the same)


@dataclass
class Model:
    """One trained classifier and what the pipeline measured on it; None = that file is absent."""

    name: str
    method: str | None  # canonical | self; None for the unsanitized model
    threshold: float  # 0 for the unsanitized model
    files: dict[str, Path]  # role -> file looked for
    filter: dict | None = None
    train: dict | None = None  # {test_acc, train_size, epochs}
    attacks: dict | None = None
    detect: dict | None = None
    cdf: list[dict] | None = None  # rows of set, divergence, value, cdf
    curve: list[dict] | None = None  # rows of epoch, loss, train_acc, eval_acc
    adaptive: dict | None = None  # the adaptive attacker (beyond the paper)

    @property
    def label(self) -> str:
        return "unsanitized" if self.method is None else f"{self.method} ≥ {threshold_label(self.threshold)}"


@dataclass
class Inputs:
    """Everything the report reads, gathered once by `gather`."""

    params: dict
    metrics: Path
    fonts: dict | None
    canonical: dict | None
    canonical_curve: list[dict] | None
    scores: dict | None
    tables: dict | None
    unsanitized: Model
    sanitized: list[Model]  # the headline model first, then each sweep item
    stale_sweep: list[str]  # folders under metrics/sweep that params.sweep no longer lists
    attacks_npz: Path
    detect_npz: Path
    fonts_preview: Path

    @property
    def dataset(self) -> str:
        return self.params["dataset"]

    def find(self, method: str | None, threshold: float) -> Model | None:
        if method is None:
            return self.unsanitized
        return next((m for m in self.sanitized if m.method == method and _same(m.threshold, threshold)), None)


def read_csv(path: Path) -> list[dict] | None:
    """Rows of a headed CSV, numeric cells as float; None if the file is absent."""
    if not path.is_file():
        return None
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _optional_json(path: Path):
    return load_json(path) if path.is_file() else None


def _model(name: str, method: str | None, threshold: float, files: dict[str, Path]) -> Model:
    found = {role: (read_csv if path.suffix == ".csv" else _optional_json)(path) for role, path in files.items()}
    return Model(name, method, threshold, files, **found)


def _model_files(folder: Path, names: dict[str, str]) -> dict[str, Path]:
    return {role: folder / name for role, name in names.items()}


# Where each model's files live (role -> path), as dvc.yaml's stages write them.
HEADLINE_FILES = {"filter": "filter.json", "train": "sanitized.json", "attacks": "attacks/sanitized.json",
                  "detect": "detect/sanitized.json", "cdf": "detect/sanitized_cdf.csv", "curve": "curves/sanitized.csv",
                  "adaptive": "adaptive/sanitized.json"}
SWEEP_FILES = {"filter": "filter.json", "train": "train.json", "attacks": "attacks.json",
               "detect": "detect.json", "cdf": "detect_cdf.csv", "curve": "curve.csv",
               "adaptive": "adaptive.json"}  # under sweep/<name>/
UNSANITIZED_FILES = {"train": "unsanitized.json", "attacks": "attacks/unsanitized.json",
                     "curve": "curves/unsanitized.csv"}


def gather(metrics: Path, data: Path, params: dict) -> Inputs:
    """Read every input that exists. `params` holds `PARAM_KEYS` as `cull.params.load` returns them."""
    metrics, data = Path(metrics), Path(data)
    if not metrics.is_dir():
        raise FileNotFoundError(f"{metrics}: metrics folder not found")
    headline = SweepItem(params["method"], params["threshold"])
    sanitized = [_model(headline.name, headline.method, headline.threshold, _model_files(metrics, HEADLINE_FILES))]
    for item in params["sweep"]:
        if item.name not in [m.name for m in sanitized]:
            files = _model_files(metrics / "sweep" / item.name, SWEEP_FILES)
            sanitized.append(_model(item.name, item.method, item.threshold, files))
    sweep_dir = metrics / "sweep"
    listed = {item.name for item in params["sweep"]}
    stale = sorted(d.name for d in sweep_dir.iterdir() if d.is_dir() and d.name not in listed) \
        if sweep_dir.is_dir() else []
    return Inputs(
        params=params, metrics=metrics, fonts=_optional_json(metrics / "fonts.json"),
        canonical=_optional_json(metrics / "canonical.json"),
        canonical_curve=read_csv(metrics / "curves/canonical.csv"),
        scores=_optional_json(metrics / "scores.json"), tables=_optional_json(metrics / "tables.json"),
        unsanitized=_model("unsanitized", None, 0.0, _model_files(metrics, UNSANITIZED_FILES)),
        sanitized=sanitized, stale_sweep=stale,
        attacks_npz=data / "attacks/sanitized.npz", detect_npz=data / "detect/sanitized.npz",
        fonts_preview=data / "fonts_preview.png",
    )


def _same(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= 1e-12


def _get(obj, *keys):
    """obj[k1][k2]...; None where a key is absent or a level is None."""
    for key in keys:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _by_float(table: dict | None) -> dict[float, dict]:
    """A metrics table keyed "5" / "0.1" re-keyed by number."""
    return {float(k): v for k, v in (table or {}).items()}
