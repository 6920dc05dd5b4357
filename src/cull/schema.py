"""Artifact layout and the leaf types of every metrics file: one home per number.

Paths. Every per-seed artifact lives under a (model, seed) folder:

    metrics/models/<model>/seed-<s>/{filter,train,attack,detect,igsm_alpha}.json, curve.csv, detect_cdf.csv
    metrics/models/<model>/seed-<s>/threats/<threat model>.json   (rows of params adaptive_models)
    data/models/<model>/seed-<s>/{kept,attacks,detect,adaptive}.npz
    models/<model>/seed-<s>.pt

`<model>` is a row name of params `models` (``headline`` is the row that the
top-level ``threshold`` and ``method`` describe), or ``unsanitized``; the
canonical (font) model is ``models/canonical/seed-<s>.pt`` with
``metrics/canonical/seed-<s>.json``; the IGSM step-size sweep of the unsanitized
model, with its calibrated step, is ``metrics/alpha/sweep/seed-<s>.json``. dvc.yaml spells the same paths; the
contract test keeps the two in step.

Leaves. A per-seed metrics file holds three kinds of number, and the
aggregate stage (`cull.stats.aggregate`) gives each its interval:

- a **count**, ``{"k": successes, "n": trials, "rate": k / n}``: accuracies,
  success and detection rates. Aggregated as a Wilson interval over all
  trials of all seeds, plus the across-seed spread of the rates.
- a **sample**, ``{"mean": mean, "n": len, "values": [...]}``: per-example
  values such as C&W L2 distortions. Aggregated as a bootstrap interval of the
  mean over the pooled examples.
- a plain **number**: a per-seed statistic (threshold tau, ROC-AUC, TPR at a
  fixed FPR, a set size). Aggregated as a Student-t interval over seeds.

An aggregated leaf is a `Stat` dict: ``{"mean", "sd", "lo", "hi", "n",
"seeds", "per_seed", "interval"}``; `lo` and `hi` are None where the interval
is undefined (one seed for a t interval, no example for a rate).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

TWO_SEED = "two-seed"  # the control detector: KL between the unsanitized models of two seeds
RESERVED = ("unsanitized", "canonical", TWO_SEED)  # folder names that no row of params `models` may take
HEADLINE = "headline"  # the row of params `models` described by the top-level threshold and method
FILES = ("filter", "train", "attack", "detect", "igsm_alpha")  # per (model, seed) metrics JSON, chain order
THREATS = "threats"  # per (model, seed) folder of the adaptive stage: one results file per threat model
# A threat model's target -> its entry in a detector's system (`systems_of`): the attack on the classifier
# alone is the oblivious one, rescored under every system.
VARIANTS = {"classifier": "oblivious", "system": "adaptive", "sum": "sum"}
THREAT_KEYS = ("threat_model", "attack", "n_sources", "systems")  # every threat-model results file, one schema
ALPHA_FILE = "igsm_alpha"  # only for the unsanitized model and the rows of params alpha_models
INTERVALS = ("wilson", "bootstrap", "t")
# Detectors, as a detect metrics file names them: its headline divergence at the top, the other divergences
# under "other_divergences", the baselines of params detect.baselines under "baselines" (cull.detectors).
BASELINES = ("squeeze", "mahalanobis")
# False-positive rates at which each attack-setting row records its ROC curve's TPR (key "roc"), so the aggregate
# gives every point of the curve an across-seed interval: dense near 0, where a detector is usable.
ROC_FPRS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7)  # and (0, 0), (1, 1)
DETECTOR_LABELS = {"kl": "KL(unsanitized ‖ sanitized), the paper's", "reverse": "KL(sanitized ‖ unsanitized)",
                   "js": "JS divergence", "squeeze": "feature squeezing", "mahalanobis": "Mahalanobis",
                   TWO_SEED: "KL between two unsanitized models (control)"}
STAT_KEYS = ("mean", "sd", "lo", "hi", "n", "seeds", "per_seed", "interval")


def seed_dir(root: str | Path, model: str, seed: int) -> Path:
    """metrics/models/<model>/seed-<s> (root ``metrics``) or data/models/<model>/seed-<s> (root ``data``)."""
    return Path(root) / "models" / model / f"seed-{int(seed)}"


def metrics_file(root: str | Path, model: str, seed: int, name: str) -> Path:
    if name not in FILES:
        raise ValueError(f"metrics file: expected one of {', '.join(FILES)}, got {name!r}")
    return seed_dir(root, model, seed) / f"{name}.json"


def threat_dir(root: str | Path, model: str, seed: int) -> Path:
    """metrics/models/<model>/seed-<s>/threats: the adaptive stage's results, one file per threat model."""
    return seed_dir(root, model, seed) / THREATS


def threat_file(root: str | Path, model: str, seed: int, name: str) -> Path:
    return threat_dir(root, model, seed) / f"{name}.json"


def partner_seed(seeds: list[int], seed: int) -> int | None:
    """The seed whose unsanitized model the two-seed control pairs with `seed`'s: the next in the list, cyclically.

    None with a single seed (a model paired with itself has KL 0 everywhere).
    """
    if seed not in seeds:
        raise ValueError(f"seed {seed} is not in seeds {seeds}")
    return None if len(seeds) < 2 else seeds[(seeds.index(seed) + 1) % len(seeds)]


def sweep_file(root: str | Path, seed: int) -> Path:
    return Path(root) / "alpha" / "sweep" / f"seed-{int(seed)}.json"


def canonical_file(root: str | Path, seed: int) -> Path:
    return Path(root) / "canonical" / f"seed-{int(seed)}.json"


def scores_file(root: str | Path, seed: int) -> Path:
    return Path(root) / "scores" / f"seed-{int(seed)}.json"


def tables_file(root: str | Path, seed: int) -> Path:
    return Path(root) / "tables" / f"seed-{int(seed)}.json"


# ---------------------------------------------------------------- leaves


def check_threat_result(obj, path) -> dict:
    """One threat model's results file (per seed or aggregated), or a ValueError naming `path`.

    The schema: ``threat_model`` (name, attack, target, detector, knows), ``attack`` (the attack's settings),
    ``n_sources`` (source images), and ``systems``: detector name -> {``threshold``: its tau,
    ``kappas``: {kappa key: the tally of `cull.attacks.adaptive_run.tally`}}. The oblivious threat model has
    one system per detector (its rows rescored under each), every other threat model the one it attacks.
    """
    if not isinstance(obj, dict) or any(k not in obj for k in THREAT_KEYS) or not isinstance(obj["systems"], dict):
        raise ValueError(f"{path}: not a threat-model results file (expected keys {', '.join(THREAT_KEYS)})")
    for name, system in obj["systems"].items():
        if not isinstance(system, dict) or set(system) != {"threshold", "kappas"}:
            raise ValueError(f"{path}: systems.{name}: expected {{threshold, kappas}}")
    return obj


def systems_of(threats: dict[str, dict]) -> dict[str, dict]:
    """Detector name -> {"threshold", and per variant of `VARIANTS` that ran: {kappa key: row}}.

    `threats`: threat-model name -> its results (`check_threat_result`; per seed or aggregated), for one
    model. The view the report takes: each detector's system under every attacker. The detectors come in
    the order the threat models first name them; params refuse two threat models of one (target, detector).
    """
    systems: dict[str, dict] = {}
    for result in threats.values():
        variant = VARIANTS[result["threat_model"]["target"]]
        for detector, system in result["systems"].items():
            entry = systems.setdefault(detector, {"threshold": system["threshold"]})
            entry[variant] = system["kappas"]
    return systems


def count(k, n) -> dict:
    """A count leaf: k successes of n trials (rate None when n = 0)."""
    k, n = int(k), int(n)
    if not 0 <= k <= n:
        raise ValueError(f"count: expected 0 <= k <= n, got k={k}, n={n}")
    return {"k": k, "n": n, "rate": k / n if n else None}


def count_of(mask) -> dict:
    """A count leaf from a boolean array: k = number of True, n = its length."""
    mask = np.asarray(mask, dtype=bool)
    return count(int(mask.sum()), mask.size)


def sample(values) -> dict:
    """A sample leaf from a 1-D array of finite per-example values (mean None when empty)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(values).all():
        raise ValueError(f"sample: expected finite values, found {int((~np.isfinite(values)).sum())} NaN or inf")
    return {"mean": float(values.mean()) if values.size else None, "n": int(values.size),
            "values": [float(v) for v in values]}


def is_count(obj) -> bool:
    return isinstance(obj, dict) and set(obj) == {"k", "n", "rate"}


def is_sample(obj) -> bool:
    return isinstance(obj, dict) and set(obj) == {"mean", "n", "values"}


def is_stat(obj) -> bool:
    return isinstance(obj, dict) and set(obj) == set(STAT_KEYS)


def value(leaf):
    """The point value of a per-seed leaf: a count's rate, a sample's mean, or the number itself."""
    if is_count(leaf):
        return leaf["rate"]
    if is_sample(leaf):
        return leaf["mean"]
    return leaf


# ---------------------------------------------------------------- aggregate.json and verdicts.json

AGGREGATE_KEYS = ("seeds", "headline", "models", "canonical", "scores", "tables", "fonts", "controls",
                  "adaptive_models", "alpha", "effects")
MODEL_KEYS = ("name", "method", "threshold", "like", "label", "files")  # beside the aggregated FILES of each model row
VERDICTS = ("REPRODUCED", "CONTRADICTED", "INCONCLUSIVE")
VERDICT_KEYS = ("claim", "source", "verdict", "rule", "numbers")


def check_aggregate(obj, path) -> dict:
    """The aggregate.json object, or a ValueError naming `path` and the first missing key."""
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in AGGREGATE_KEYS if k not in obj]
    if missing:
        raise ValueError(f"{path}: not an aggregate metrics file (missing {', '.join(missing)})")
    return obj


def check_verdicts(obj, path) -> dict:
    if not isinstance(obj, dict) or not all(isinstance(v, dict) and set(v) == set(VERDICT_KEYS)
                                            for v in obj.values()):
        raise ValueError(f"{path}: not a verdicts file (expected claim id -> {{{', '.join(VERDICT_KEYS)}}})")
    return obj


def count_from_rate(rate: float, n: int) -> dict:
    """A count leaf from a rate measured as k / n (k recovered exactly by rounding)."""
    return count(round(float(rate) * int(n)), n)
