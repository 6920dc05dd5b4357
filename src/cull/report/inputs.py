"""What the report reads: metrics/aggregate.json and metrics/verdicts.json, plus per-seed plot data.

`gather` returns an `Inputs`. Every number comes from the aggregate, where each
is a `Stat` (`cull.schema`): mean, sd, 95% interval and n, computed by the
aggregate stage and only formatted here. The figures also read per-seed plot
data (the divergence CDFs) and the headline model's first-seed archives (the
example images).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from cull import schema
from cull.artifacts import load_json

METHODS = ("canonical", "self")
PARAM_KEYS = ("threshold", "method", "models", "seeds", "dataset", "base", "split", "igsm", "cw", "detect",
              "adaptive", "train", "tables", "fonts")  # what the report stage reads (dvc.yaml lists the same)


@dataclass
class Model:
    """One trained classifier, its aggregated metrics (`Stat` leaves) and its per-seed CDF plot data."""

    name: str
    method: str | None  # canonical | self; None for the unsanitized model
    threshold: float  # 0 for the unsanitized model
    label: str
    files: str  # the per-seed metrics folder pattern, metrics/models/<name>/seed-<s>
    train: dict
    attacks: dict
    curve: list | None = None
    filter: dict | None = None  # None for the unsanitized model
    detect: dict | None = None
    threats: dict | None = None  # threat-model name -> aggregated results (rows of params adaptive_models)
    igsm_alpha: dict | None = None  # IGSM at the calibrated and the reference step (unsanitized, params alpha_models)
    cdf: list[list[dict]] | None = None  # per seed: rows of set, divergence, value, cdf


@dataclass
class Inputs:
    """Everything the report reads, gathered once by `gather`."""

    params: dict
    metrics: Path
    agg: dict
    verdicts: dict
    seeds: list[int]
    fonts: dict
    canonical: dict
    scores: dict
    tables: dict
    unsanitized: Model
    sanitized: list[Model]  # the headline model first, then the other rows of params `models`
    attacks_npz: Path  # the headline model's first seed
    detect_npz: Path
    fonts_preview: Path
    retention: dict | None = None  # benchmarks/results/retention.json: self-sanitization shares per epoch
    selection: dict | None = None  # benchmarks/results/canonical_selection.json: canonical model per face selection

    @property
    def dataset(self) -> str:
        return self.params["dataset"]

    def find(self, method: str | None, threshold: float) -> Model | None:
        if method is None:
            return self.unsanitized
        return next((m for m in self.sanitized if m.method == method and _same(m.threshold, threshold)), None)


def read_csv(path: Path) -> list[dict]:
    """Rows of a headed CSV, numeric cells as float."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (run dvc repro)")
    with open(path, newline="") as f:
        return [{k: _number(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text


def _model(entry: dict, metrics: Path, seeds: list[int]) -> Model:
    name = entry["name"]
    cdf = None
    if entry.get("detect") is not None:
        cdf = [read_csv(schema.seed_dir(metrics, name, s) / "detect_cdf.csv") for s in seeds]
    return Model(name=name, method=entry["method"], threshold=entry["threshold"], label=entry["label"],
                 files=entry["files"], train=entry["train"], attacks=entry["attack"], curve=entry.get("curve"),
                 filter=entry.get("filter"), detect=entry.get("detect"), threats=entry.get("threats"),
                 igsm_alpha=entry.get(schema.ALPHA_FILE), cdf=cdf)


def gather(aggregate: Path, verdicts: Path, metrics: Path, data: Path, params: dict,
           retention: Path | None = None, selection: Path | None = None) -> Inputs:
    """Read the aggregate, the verdicts, the plot data and, if given, the retention curve and selections.

    `params` holds `PARAM_KEYS` as `cull.params.load` gives; `retention` is the
    JSON of benchmarks/retention_curve.py, `selection` that of
    benchmarks/canonical_selection.py.
    """
    aggregate, metrics, data = Path(aggregate), Path(metrics), Path(data)
    agg = schema.check_aggregate(load_json(aggregate), aggregate)
    found = schema.check_verdicts(load_json(verdicts), verdicts)
    wanted = [row.name for row in params["models"]]
    missing = [name for name in wanted if name not in agg["models"]]
    if agg["seeds"] != params["seeds"] or missing:
        raise ValueError(f"{aggregate}: written for seeds {agg['seeds']} and rows {sorted(agg['models'])}, but params "
                         f"ask for seeds {params['seeds']} and rows {wanted} (run dvc repro)")
    seeds = agg["seeds"]
    head = schema.seed_dir(data, agg["headline"], seeds[0])
    return Inputs(
        params=params, metrics=metrics, agg=agg, verdicts=found, seeds=seeds, fonts=agg["fonts"],
        canonical=agg["canonical"], scores=agg["scores"], tables=agg["tables"],
        unsanitized=_model(agg["models"]["unsanitized"], metrics, seeds),
        sanitized=[_model(agg["models"][name], metrics, seeds) for name in wanted],
        attacks_npz=head / "attacks.npz", detect_npz=head / "detect.npz", fonts_preview=data / "fonts_preview.png",
        retention=None if retention is None else _retention(Path(retention)),
        selection=None if selection is None else _selection(Path(selection)),
    )


RETENTION_KEYS = ("recipe", "precision", "seeds", "thresholds", "paper_table2_share", "curve", "closest_epoch")
SELECTION_KEYS = ("seeds", "epochs", "recipe", "paper_points", "candidates")


def _benchmark_result(path: Path, keys: tuple[str, ...], what: str) -> dict:
    """A committed benchmark output (`what` names it in the error), refused unless it holds every key."""
    obj = load_json(path)
    missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
    if missing:
        raise ValueError(f"{path}: not {what} (missing {', '.join(missing)})")
    return obj


def _retention(path: Path) -> dict:
    return _benchmark_result(path, RETENTION_KEYS, "a retention curve of benchmarks/retention_curve.py")


def _selection(path: Path) -> dict:
    return _benchmark_result(path, SELECTION_KEYS, "a result of benchmarks/canonical_selection.py")


def _same(a: float, b: float) -> bool:
    return abs(float(a) - float(b)) <= 1e-12


def _get(obj, *keys):
    """obj[k1][k2]...; None only where the aggregate itself holds None (a setting with no example).

    A key the aggregate lacks is a KeyError: the report never guesses a layout.
    """
    for key in keys:
        if obj is None:
            return None
        obj = obj[key]
    return obj


def _by_float(table: dict | None) -> dict[float, dict]:
    """A metrics table keyed "5" / "0.1" re-keyed by number."""
    return {float(k): v for k, v in (table or {}).items()}
