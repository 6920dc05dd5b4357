"""Outlier scores and the sanitization filter (paper §2.2, §3.2).

Notation: N training examples, K = 10 classes. An example's confidence is the
softmax probability that a scoring model (the canonical font model, or the
unsanitized model itself) gives to the example's own label. Lower confidence
means more of an outlier. Thresholds reach 0.9999999, and float32 softmax
cannot tell 1 - 1e-7 from 1, so confidences are kept as float64
log-probabilities computed from log-softmax; `1 - p` is recovered exactly with
`-expm1(log p)`.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch

from cull.params import check_threshold


def log_confidence(logits: torch.Tensor, labels: np.ndarray) -> np.ndarray:
    """Log-probability of each example's own label.

    Parameters
    ----------
    logits : (N, K) tensor of raw model outputs.
    labels : (N,) int array of classes.

    Returns
    -------
    (N,) float64 array of log p(label | x), all <= 0. Higher is more typical.
    """
    labels = np.asarray(labels)
    if logits.ndim != 2 or len(logits) != len(labels):
        raise ValueError(f"logits of shape {tuple(logits.shape)} do not match {len(labels)} labels")
    log_probs = torch.log_softmax(logits.double(), dim=1)
    return log_probs[torch.arange(len(labels)), torch.as_tensor(labels, dtype=torch.long)].numpy()


def check_scores(scores: dict, method: str, path) -> np.ndarray:
    """The (N,) log-confidences of `method` from a scores archive, checked against its labels.

    Raises ValueError naming `path` when the labels are not N classes in
    [0, 10), when the method has no scores for this dataset (all NaN: canonical
    on colour SVHN), or when some scores are NaN or inf (a broken artifact).
    """
    labels, values = np.asarray(scores["labels"]), np.asarray(scores[method], dtype=np.float64)
    if values.ndim != 1 or len(values) != len(labels):
        raise ValueError(f"{path}: {method} has shape {values.shape} but labels has {len(labels)} entries; "
                         "expected one score per label")
    if labels.size and (not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() >= 10):
        raise ValueError(f"{path}: labels: expected integer classes in [0, 10), found values from "
                         f"{labels.min()} to {labels.max()} ({labels.dtype})")
    bad = ~np.isfinite(values)
    if bad.all() and method == "canonical":
        raise ValueError(f"{path}: no canonical scores for this dataset (canonical sanitization needs "
                         "greyscale digits; use method: self)")
    if bad.any():
        raise ValueError(f"{path}: {method}: {int(bad.sum())} of {len(values)} scores are NaN or inf "
                         "(rerun the score stage: dvc repro -f score)")
    return values


def one_minus_confidence(log_conf: np.ndarray) -> np.ndarray:
    """1 - p, exact even where p is within 1e-12 of 1."""
    return -np.expm1(log_conf)


def keep_mask(log_conf: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean keep-mask (N,): True where confidence >= threshold.

    Threshold 0 keeps everything. The comparison runs on log-probabilities so
    that thresholds near 1 are resolved.
    """
    threshold = check_threshold(threshold, "threshold")
    log_conf = np.asarray(log_conf, dtype=np.float64)
    if np.isnan(log_conf).any():
        raise ValueError("confidence scores contain NaN; were they computed for this dataset?")
    if threshold == 0.0:
        return np.ones(len(log_conf), dtype=bool)
    return log_conf >= np.log(threshold)


def class_counts(labels: np.ndarray, mask: np.ndarray | None = None, *, num_classes: int = 10) -> list[int]:
    labels = np.asarray(labels) if mask is None else np.asarray(labels)[mask]
    return np.bincount(labels, minlength=num_classes).tolist()


def sanitize(log_conf: np.ndarray, labels: np.ndarray, *, threshold: float) -> tuple[np.ndarray, dict]:
    """Indices kept at `threshold` and a summary (set size, class composition).

    Warns when a class is emptied and raises when nothing is left, since a
    model cannot be trained on an empty set.
    """
    mask = keep_mask(log_conf, threshold)
    counts = class_counts(labels, mask)
    kept = int(mask.sum())
    if kept == 0:
        raise ValueError(f"threshold {threshold}: every training example is below it; nothing to train on")
    empty = [k for k, c in enumerate(counts) if c == 0]
    if empty:
        warnings.warn(f"threshold {threshold}: classes {empty} have no examples left after filtering")
    summary = {
        "threshold": threshold,
        "size": kept,
        "total": int(len(mask)),
        "fraction": kept / len(mask),
        "class_counts": counts,
        "class_fractions": [c / kept for c in counts],
        "empty_classes": empty,
    }
    return np.flatnonzero(mask), summary


def random_like(log_conf: np.ndarray, labels: np.ndarray, *, threshold: float,
                seed: int) -> tuple[np.ndarray, dict]:
    """A random subset with the class counts that `sanitize` keeps at `threshold`, and its summary.

    The control of claim C8: a model trained on it sees as many images of each
    class as the sanitized model, but drawn uniformly within the class, not
    kept for being typical. So a difference between the two models is due to
    *which* images were removed, not to how many. Seeded by `seed` (numpy
    PCG64); returns sorted indices and a `sanitize`-shaped summary, plus
    ``overlap``: the fraction of the subset that the sanitized set holds too.
    """
    mirrored, reference = sanitize(log_conf, labels, threshold=threshold)
    labels = np.asarray(labels)
    rng = np.random.default_rng([int(seed), 0xC8])  # a stream of its own: no other draw shifts it
    parts = [rng.choice(np.flatnonzero(labels == k), size=count, replace=False)
             for k, count in enumerate(reference["class_counts"]) if count]
    kept = np.sort(np.concatenate(parts))
    return kept, {**reference, "overlap": float(np.isin(kept, mirrored).mean())}


def mean_confidence(log_conf: np.ndarray, labels: np.ndarray, *, num_classes: int = 10) -> list[float | None]:
    """Per class, the mean confidence exp(log_conf) of the training images of that class (None if it has none).

    Where a class's mean is low, few of its images survive any threshold: the
    paper's Fig. 11a, where the canonical model's 8s fall.
    """
    conf, labels = np.exp(np.asarray(log_conf, dtype=np.float64)), np.asarray(labels)
    return [float(conf[labels == c].mean()) if (labels == c).any() else None for c in range(num_classes)]


def set_sizes(log_conf: np.ndarray, labels: np.ndarray, thresholds: list[float]) -> list[dict]:
    """Set size and class composition at each threshold (paper Tables 1-3, Fig. 11)."""
    rows = []
    for t in thresholds:
        mask = keep_mask(log_conf, t)
        kept = int(mask.sum())
        counts = class_counts(labels, mask)
        rows.append({
            "threshold": float(t),
            "size": kept,
            "fraction": kept / len(mask),
            "class_counts": counts,
            "class_fractions": [c / kept if kept else 0.0 for c in counts],
        })
    return rows
