"""Intervals over seeds and examples, the aggregate of per-seed metrics, and the verdict rules.

Every interval is 95% and comes from scipy.stats:

- rates (`cull.schema.count` leaves): Wilson score interval over all trials of
  all seeds pooled (``binomtest(k, n).proportion_ci(method="wilson")``);
- means of per-example values (`cull.schema.sample` leaves): percentile
  bootstrap of the mean over the pooled examples (``scipy.stats.bootstrap``,
  seeded, so the same inputs give the same interval);
- per-seed statistics (plain numbers: tau, AUC, TPR at FPR, set sizes, and the
  paired per-seed differences and slopes of `effects`): Student-t interval of
  the mean over seeds (``scipy.stats.t.interval``), undefined for one seed.

`aggregate_tree` turns a list of per-seed metrics trees (same layout, one per
seed) into one tree of `Stat` dicts (see `cull.schema`). `verdict_above`
applies the one rule every verdict uses.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as sps

from cull import schema

CONFIDENCE = 0.95
BOOTSTRAP_RESAMPLES = 2000  # percentile bootstrap; 2000 resamples put the bounds' own noise well under their width
BOOTSTRAP_SEED = 0  # fixed, so an aggregate is a pure function of its inputs


def _finite(x) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """95% Wilson interval of a proportion k / n; (None, None) when n = 0."""
    if n == 0:
        return None, None
    ci = sps.binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE, method="wilson")
    return float(ci.low), float(ci.high)


def bootstrap_mean(values) -> tuple[float | None, float | None]:
    """95% percentile-bootstrap interval of the mean of 1-D `values`; (None, None) for fewer than 2."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None, None
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])  # a degenerate sample: every resample has this mean
    res = sps.bootstrap((values,), np.mean, n_resamples=BOOTSTRAP_RESAMPLES, confidence_level=CONFIDENCE,
                        method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def t_interval(values) -> tuple[float | None, float | None]:
    """95% Student-t interval of the mean of per-seed `values`; (None, None) for fewer than 2 seeds."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None, None
    mean, sem = float(values.mean()), float(sps.sem(values))
    if sem == 0.0:
        return mean, mean
    low, high = sps.t.interval(CONFIDENCE, df=values.size - 1, loc=mean, scale=sem)
    return float(low), float(high)


def _sd(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1)) if values.size >= 2 else None


def stat(mean, lo, hi, *, n: int, per_seed: list, interval: str) -> dict:
    """One `Stat` dict (keys `cull.schema.STAT_KEYS`)."""
    seen = [v for v in per_seed if v is not None]
    return {"mean": _finite(mean), "sd": _sd(seen), "lo": _finite(lo), "hi": _finite(hi), "n": int(n),
            "seeds": len(seen), "per_seed": per_seed, "interval": interval}


def of_counts(leaves: list[dict]) -> dict:
    """Pooled rate of count leaves (one per seed) with its Wilson interval; n = trials pooled."""
    k, n = sum(c["k"] for c in leaves), sum(c["n"] for c in leaves)
    lo, hi = wilson(k, n)
    return stat(k / n if n else None, lo, hi, n=n, per_seed=[c["rate"] for c in leaves], interval="wilson")


def of_samples(leaves: list[dict]) -> dict:
    """Mean of the pooled values of sample leaves with its bootstrap interval; n = examples pooled."""
    values = np.concatenate([np.asarray(s["values"], dtype=np.float64) for s in leaves]) if leaves else np.empty(0)
    lo, hi = bootstrap_mean(values)
    return stat(values.mean() if values.size else None, lo, hi, n=values.size,
                per_seed=[s["mean"] for s in leaves], interval="bootstrap")


# Per-seed numbers with a physical range: a t interval is clipped to it (a share cannot be negative).
BOUNDS = {"auc": (0.0, 1.0), "roc": (0.0, 1.0), "tpr_at_1fpr": (0.0, 1.0), "tpr_at_5fpr": (0.0, 1.0), "fraction": (0.0, 1.0),
          "class_fractions": (0.0, 1.0), "size": (0.0, math.inf), "class_counts": (0.0, math.inf),
          "train_size": (0.0, math.inf),
          "threshold": (0.0, math.inf)}  # a detector's tau: every detector score is a divergence or distance >= 0


def of_seeds(values: list, *, bounds: tuple[float, float] = (-math.inf, math.inf)) -> dict:
    """Mean over seeds of per-seed numbers (None = not measured in that seed) with its t interval,
    clipped to `bounds`."""
    seen = [float(v) for v in values if v is not None]
    lo, hi = t_interval(seen)
    if lo is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return stat(np.mean(seen) if seen else None, lo, hi, n=len(seen),
                per_seed=[None if v is None else float(v) for v in values], interval="t")


def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def aggregate_tree(trees: list, *, keep: frozenset | set = frozenset(), _key: str | None = None):
    """One tree of `Stat` dicts from per-seed trees of the same layout (see the module docstring).

    Dicts are merged key by key (a key absent in a seed counts as None there);
    lists of equal length element by element; strings and booleans that agree
    across seeds are kept as they are, and ones that differ become a list.
    Fields named in `keep` (they describe the run: a sanitization threshold, an
    epoch count) stay plain where every seed agrees.
    """
    present = [t for t in trees if t is not None]
    if not present:
        return None
    if _key in keep and len(present) == len(trees) and all(t == present[0] for t in present):
        return present[0]
    if all(schema.is_count(t) for t in present):
        return of_counts(present)
    if all(schema.is_sample(t) for t in present):
        return of_samples(present)
    if all(_is_number(t) for t in present):
        return of_seeds(trees, bounds=BOUNDS.get(_key, (-math.inf, math.inf)))
    if all(isinstance(t, dict) for t in present):
        keys = list(dict.fromkeys(k for t in present for k in t))
        return {k: aggregate_tree([t.get(k) if isinstance(t, dict) else None for t in trees], keep=keep, _key=k)
                for k in keys}
    if all(isinstance(t, list) for t in present) and len({len(t) for t in present}) == 1:
        return [aggregate_tree([t[i] if t is not None else None for t in trees], keep=keep, _key=_key)
                for i in range(len(present[0]))]
    if all(t == present[0] for t in present):
        return present[0]
    return present


# ---------------------------------------------------------------- effects: paired differences and slopes


def paired_difference(a: list, b: list) -> dict:
    """Per-seed a - b (point values of per-seed leaves, seed by seed) with its t interval over seeds."""
    diffs = [None if x is None or y is None else x - y
             for x, y in ((schema.value(p), schema.value(q)) for p, q in zip(a, b))]
    return of_seeds(diffs)


def slope(x, y) -> float | None:
    """Least-squares slope of y on x (None for fewer than 2 distinct x or any missing y)."""
    pairs = [(float(u), float(v)) for u, v in zip(x, y) if v is not None]
    if len(pairs) != len(x) or len({u for u, _ in pairs}) < 2:
        return None
    return float(sps.linregress([u for u, _ in pairs], [v for _, v in pairs]).slope)


def seed_slopes(x: list[float], per_point: list[list]) -> dict:
    """Per-seed slope of the point values over `x` (per_point[i][s] = leaf of point i, seed s), t over seeds."""
    seeds = len(per_point[0]) if per_point else 0
    return of_seeds([slope(x, [schema.value(point[s]) for point in per_point]) for s in range(seeds)])


# ---------------------------------------------------------------- the verdict rule


def verdict_above(s: dict | None, bound: float, *, strict: bool = True) -> str:
    """REPRODUCED if the whole 95% interval lies above `bound` (at or above it when not `strict`),
    CONTRADICTED if it lies wholly on the other side, INCONCLUSIVE if it straddles `bound` or is undefined."""
    if s is None or s["lo"] is None or s["hi"] is None:
        return "INCONCLUSIVE"
    if s["lo"] > bound or (not strict and s["lo"] >= bound):
        return "REPRODUCED"
    if s["hi"] < bound or (strict and s["hi"] <= bound):
        return "CONTRADICTED"
    return "INCONCLUSIVE"


def all_of(verdicts: list[str]) -> str:
    """A claim over several parts: CONTRADICTED if any part is, REPRODUCED if all are, else INCONCLUSIVE."""
    if not verdicts:
        return "INCONCLUSIVE"
    if "CONTRADICTED" in verdicts:
        return "CONTRADICTED"
    return "REPRODUCED" if all(v == "REPRODUCED" for v in verdicts) else "INCONCLUSIVE"
