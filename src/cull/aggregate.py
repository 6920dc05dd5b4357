"""The aggregate of every per-seed metrics file: one `Stat` per number, and the effects the verdicts use.

`aggregate` reads, for each seed of params `seeds`, the files that `cull.schema`
places (every model row's chain, the unsanitized model, the canonical model,
scores and tables) and writes one tree in the same layout with each number
replaced by a `Stat` (`cull.stats`). A file that a seed lacks is an error: an
aggregate never mixes a partial run into a complete one.

`effects` holds the comparisons that the paper's claims are about, each with
its interval over seeds, computed here so that nothing downstream recomputes
an interval:

- ``vs_unsanitized[<model>]``: paired per-seed differences, model minus the
  unsanitized model of the same seed: IGSM accuracy per iteration count and
  C&W mean L2 per kappa;
- ``slopes[<method>]``: per-seed least-squares slopes over the trained
  thresholds of one method, on the x = -log10(1 - threshold) axis, with the
  unsanitized model at x = 0: IGSM-5 accuracy and C&W kappa-0 mean L2;
- ``igsm_detect_slope[<model>]``: per-seed slope of the detection rate over the
  IGSM iteration counts;
- ``vs_two_seed[<model>]``: paired per-seed differences of ROC-AUC, the model's
  KL detector minus the two-seed control's (``controls.two_seed``: the KL
  between the unsanitized models of seed s and the next seed), per attack
  setting. Empty with one seed, which has no control.
- ``vs_random[<random row>]``: paired per-seed differences, the row it
  mirrors minus the random row (same set size and class counts, same seed):
  IGSM accuracy, C&W mean L2, and the KL detector's ROC-AUC per setting.
- ``detectors[<model>]``: the detector comparison on the model's examples.
  ``mean_auc[<detector>]`` is each seed's ROC-AUC averaged over the attack
  settings that have examples, with its t interval over seeds, for every
  detector of the model's detect file (`detectors_of`: the paper's KL, the other
  divergences, the baselines) and, with two seeds or more, the two-seed control
  (on the examples made on its own second model). ``best`` is the detector with
  the highest mean; ``best_minus[<detector>]`` and ``kl_minus[<detector>]`` are
  paired per-seed differences of mean AUC, the best (the paper's KL) minus each other.
- ``alpha_vs_unsanitized[<row of alpha_models>]``: paired per-seed
  differences, model minus unsanitized, of IGSM accuracy per iteration count at
  the calibrated and at the reference step size (`cull.calibration`).

``alpha`` holds the step-size sweep of the unsanitized models with each seed's
calibrated step (aggregated like every per-seed file), and the rows that were
attacked at it.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from cull import schema
from cull.artifacts import load_json
from cull.params import OBLIVIOUS, ModelRow
from cull.stats import aggregate_tree, of_seeds, paired_difference, seed_slopes

UNSANITIZED_FILES = ("train", "attack", schema.ALPHA_FILE)
# Per file: fields that describe the run rather than measure it; kept as they are when every seed agrees.
IDENTITY = {
    "filter": {"model", "method", "like", "threshold", "total"},
    "train": {"method", "threshold", "epochs"},
    "attack": {"n_igsm", "n_cw"},
    "detect": {"divergence", "n_val", "n_test", "bits", "median"},
    "threat": {"threat_model", "attack", "n_sources"},
    "canonical": {"train_size", "holdout_size", "epochs"},
    "tables": {"threshold", "total"},
    "scores": set(),
    "curve": {"epoch"},
    "igsm_alpha": {"eps", "n_images", "alpha"},
    "sweep": {"eps", "n_images", "target_accuracy", "iterations", "reference"},
}


def nines(threshold: float) -> float:
    """-log10(1 - threshold), an axis that spreads thresholds crowding towards 1: 0.9 -> 1, 0.9999 -> 4."""
    return round(-math.log10(1.0 - threshold), 9) + 0.0  # + 0.0 turns -0.0 into 0.0


def read_curve(path: Path) -> list[dict]:
    """Rows of a per-epoch training curve CSV, numbers as float; FileNotFoundError if absent."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: file not found (run dvc repro)")
    with open(path, newline="") as f:
        try:
            return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: not a training-curve CSV of numbers ({e})") from None


def _per_seed(paths: list[Path], kind: str) -> tuple[list, dict]:
    trees = [read_curve(p) if kind == "curve" else load_json(p) for p in paths]
    return trees, aggregate_tree(trees, keep=IDENTITY[kind])


def _leaf(tree, *keys):
    """tree[k1][k2]... of a per-seed tree; KeyError names the path (a layout the schema does not allow)."""
    for key in keys:
        tree = tree[key]
    return tree


def aggregate(metrics: str | Path, *, seeds: list[int], rows: list[ModelRow],
              adaptive_models: list[str] | None = None, alpha_models: list[str] | None = None) -> dict:
    """The aggregate.json object for `seeds` and the model table `rows` (headline first).

    Only the rows named in `adaptive_models` (params; default: the headline) have an adaptive file,
    and only those in `alpha_models` (default: the headline) an igsm_alpha file.
    """
    metrics = Path(metrics)
    adaptive_models = [rows[0].name] if adaptive_models is None else adaptive_models
    alpha_models = [rows[0].name] if alpha_models is None else alpha_models

    optional = {schema.ALPHA_FILE: alpha_models}  # file -> the rows that have it

    def files_of(name: str) -> tuple[str, ...]:
        return tuple(f for f in schema.FILES if f not in optional or name in optional[f])

    models, raw = {}, {}
    for name, files, method, threshold, like, label in (
        [("unsanitized", UNSANITIZED_FILES, None, 0.0, None, "unsanitized")]
        + [(r.name, files_of(r.name), r.method, r.threshold, r.like, r.label) for r in rows]
    ):
        entry = {"name": name, "method": method, "threshold": threshold, "like": like, "label": label,
                 "files": str(schema.seed_dir(metrics, name, seeds[0]).parent / "seed-<s>")}
        raw[name] = {}
        for kind in files:
            raw[name][kind], entry[kind] = _per_seed([schema.metrics_file(metrics, name, s, kind) for s in seeds], kind)
        _, entry["curve"] = _per_seed([schema.seed_dir(metrics, name, s) / "curve.csv" for s in seeds], "curve")
        if name in adaptive_models:
            entry["threats"] = threats(metrics, name, seeds)
        models[name] = entry
    _, sweep = _per_seed([schema.sweep_file(metrics, s) for s in seeds], "sweep")
    alpha = {"models": list(alpha_models), "sweep": sweep}
    _, canonical = _per_seed([schema.canonical_file(metrics, s) for s in seeds], "canonical")
    _, canonical_curve = _per_seed([schema.canonical_file(metrics, s).with_suffix(".csv") for s in seeds], "curve")
    _, scores = _per_seed([schema.scores_file(metrics, s) for s in seeds], "scores")
    _, tables = _per_seed([schema.tables_file(metrics, s) for s in seeds], "tables")
    controls, two_seed = {}, None
    if len(seeds) > 1:  # one seed has no partner; its control file says so and is left out
        two_seed = [load_json(schema.metrics_file(metrics, schema.TWO_SEED, s, "detect")) for s in seeds]
        partners = [t.pop("partner", None) for t in two_seed]  # per seed, so not a number to aggregate
        controls["two_seed"] = {"name": schema.TWO_SEED, "label": "KL between two unsanitized models",
                                "partners": dict(zip(map(str, seeds), partners)),
                                "files": str(schema.seed_dir(metrics, schema.TWO_SEED, seeds[0]).parent / "seed-<s>"),
                                "detect": aggregate_tree(two_seed, keep=IDENTITY["detect"])}
    fonts_path = metrics / "fonts.json"
    return {
        "seeds": list(seeds),
        "headline": rows[0].name,
        "models": models,
        "canonical": {**canonical, "curve": canonical_curve},
        "scores": scores,
        "tables": tables,
        "fonts": load_json(fonts_path),
        "controls": controls,
        "adaptive_models": list(adaptive_models),
        "alpha": alpha,
        "effects": effects(raw, rows, two_seed, alpha_models),
    }


def threats(metrics: Path, model: str, seeds: list[int]) -> dict:
    """Threat-model name -> its results aggregated over seeds (`cull.schema.check_threat_result` layout).

    Every seed must hold the same threat models: an aggregate never mixes runs of different settings.
    """
    per_seed = {}
    for s in seeds:
        folder = schema.threat_dir(metrics, model, s)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: folder not found (run dvc repro)")
        per_seed[s] = {p.stem: schema.check_threat_result(load_json(p), p) for p in sorted(folder.glob("*.json"))}
        if not per_seed[s]:
            raise ValueError(f"{folder}: no threat-model results (run dvc repro)")
    names = list(per_seed[seeds[0]])
    for s in seeds[1:]:
        if sorted(per_seed[s]) != sorted(names):
            raise ValueError(f"{schema.threat_dir(metrics, model, s)}: threat models {sorted(per_seed[s])} differ "
                             f"from seed {seeds[0]}'s {sorted(names)} (rerun dvc repro)")
    order = [t for t in names if t == OBLIVIOUS] + [t for t in names if t != OBLIVIOUS]
    return {name: aggregate_tree([per_seed[s][name] for s in seeds], keep=IDENTITY["threat"]) for name in order}


def detectors_of(detect: dict) -> dict:
    """Detector name -> its rows in one (per-seed or aggregated) detect tree: the headline divergence first."""
    return {detect["divergence"]: detect, **(detect.get("other_divergences") or {}), **(detect.get("baselines") or {})}


def mean_auc(rows: dict) -> float | None:
    """ROC-AUC averaged over a detector's attack settings that have an AUC (examples); None if none has."""
    aucs = [r["auc"] for attack in ("igsm", "cw") for r in rows[attack].values() if r.get("auc") is not None]
    return sum(aucs) / len(aucs) if aucs else None


def compare_detectors(detect: list[dict], two_seed: list[dict] | None = None) -> dict:
    """``detectors[<model>]`` of the effects (module docstring) from a model's per-seed detect trees."""
    per_seed = [{name: mean_auc(rows) for name, rows in detectors_of(d).items()} for d in detect]
    if two_seed is not None:
        for values, control in zip(per_seed, two_seed):
            values[schema.TWO_SEED] = mean_auc(control)
    names = list(per_seed[0])
    head = detect[0]["divergence"]
    means = {name: of_seeds([v.get(name) for v in per_seed], bounds=(0.0, 1.0)) for name in names}
    ranked = [name for name in names if means[name]["mean"] is not None]
    best = max(ranked, key=lambda name: means[name]["mean"]) if ranked else None

    def minus(first):
        return {name: of_seeds([None if v.get(first) is None or v.get(name) is None else v[first] - v[name]
                                for v in per_seed]) for name in names if name != first}

    return {"names": names, "paper": head, "mean_auc": means, "best": best,
            "best_minus": minus(best) if best else {}, "kl_minus": minus(head)}


def effects(raw: dict, rows: list[ModelRow], two_seed: list | None = None, alpha_models: tuple = ()) -> dict:
    """The paired differences and slopes described in the module docstring, from per-seed trees."""
    base = raw["unsanitized"]["attack"]
    vs, slopes, detect_slope, vs_two_seed, detectors = {}, {}, {}, {}, {}
    for r in rows:
        attack = raw[r.name]["attack"]
        vs[r.name] = {
            "igsm_acc": {k: paired_difference([_leaf(a, "igsm", k, "acc") for a in attack],
                                              [_leaf(b, "igsm", k, "acc") for b in base]) for k in attack[0]["igsm"]},
            "cw_l2": {k: paired_difference([_leaf(a, "cw", k, "mean_l2") for a in attack],
                                           [_leaf(b, "cw", k, "mean_l2") for b in base]) for k in attack[0]["cw"]},
        }
        detect = raw[r.name]["detect"]
        detectors[r.name] = compare_detectors(detect, two_seed)
        ks = sorted(detect[0]["igsm"], key=float)
        detect_slope[r.name] = {"iterations": [float(k) for k in ks],
                                "slope": seed_slopes([float(k) for k in ks],
                                                     [[_leaf(d, "igsm", k, "detect") for d in detect] for k in ks])}
        if two_seed is not None:
            vs_two_seed[r.name] = {
                attack: {k: paired_difference([_leaf(d, attack, k, "auc") for d in detect],
                                              [_leaf(c, attack, k, "auc") for c in two_seed])
                         for k in detect[0][attack] if k in two_seed[0][attack]}
                for attack in ("igsm", "cw")}
    for method in ("canonical", "self"):
        members = sorted((r for r in rows if r.method == method), key=lambda r: r.threshold)
        if not members:
            continue
        x = [0.0] + [nines(r.threshold) for r in members]
        attacks = [base] + [raw[r.name]["attack"] for r in members]
        slopes[method] = {
            "models": ["unsanitized"] + [r.name for r in members],
            "x": x,
            "igsm_acc_5": seed_slopes(x, [[_leaf(a, "igsm", "5", "acc") for a in att] for att in attacks])
            if all("5" in att[0]["igsm"] for att in attacks) else None,
            "cw_l2_0": seed_slopes(x, [[_leaf(a, "cw", "0", "mean_l2") for a in att] for att in attacks])
            if all("0" in att[0]["cw"] for att in attacks) else None,
        }
    vs_random = {}
    for r in (r for r in rows if r.method == "random"):
        mirrored, control = raw[r.like], raw[r.name]
        vs_random[r.name] = {
            "mirrors": r.like,
            "igsm_acc": {k: paired_difference([_leaf(a, "igsm", k, "acc") for a in mirrored["attack"]],
                                              [_leaf(b, "igsm", k, "acc") for b in control["attack"]])
                         for k in control["attack"][0]["igsm"]},
            "cw_l2": {k: paired_difference([_leaf(a, "cw", k, "mean_l2") for a in mirrored["attack"]],
                                           [_leaf(b, "cw", k, "mean_l2") for b in control["attack"]])
                      for k in control["attack"][0]["cw"]},
            "auc": {attack: {k: paired_difference([_leaf(d, attack, k, "auc") for d in mirrored["detect"]],
                                                  [_leaf(c, attack, k, "auc") for c in control["detect"]])
                             for k in control["detect"][0][attack]}
                    for attack in ("igsm", "cw")},
        }
    base_alpha = raw["unsanitized"].get(schema.ALPHA_FILE)
    alpha_vs = {name: {step: {k: paired_difference([_leaf(a, step, "acc", k) for a in raw[name][schema.ALPHA_FILE]],
                                                   [_leaf(b, step, "acc", k) for b in base_alpha])
                              for k in base_alpha[0][step]["acc"]}
                       for step in ("calibrated", "reference")}
                for name in alpha_models if base_alpha is not None}
    return {"vs_unsanitized": vs, "slopes": slopes, "igsm_detect_slope": detect_slope, "vs_two_seed": vs_two_seed,
            "vs_random": vs_random, "alpha_vs_unsanitized": alpha_vs, "detectors": detectors}
