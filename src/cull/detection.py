"""Detecting adversarial examples by how much two models disagree (paper §2.4, §3.4).

Notation: N examples, K = 10 classes. For an input x, P_u(x) and P_s(x) are the
softmax outputs (K,) of the unsanitized and the sanitized model. The paper's
score is D_KL(P_u(x) || P_s(x)), "from the unsanitized model to the sanitized
model" (kind ``"kl"``). We also report the reverse direction D_KL(P_s || P_u)
(``"reverse"``) and the Jensen-Shannon divergence (``"js"``). All three are in
nats, computed in float64 from log-softmax of the logits, so a probability of
1e-300 is still resolved and no score is NaN or inf. Every score points the same
way: 0 means the models agree, higher means more likely adversarial.

The detector accepts x (calls it normal) iff score(x) <= tau, and rejects it
otherwise. tau is calibrated on held-out *normal* examples of the validation
split, never on the test set; `calibrate_threshold` gives the exact rule.

Metrics, one row per attack setting:
- detection accuracy: on adversarial examples the fraction rejected, on normal
  examples the fraction accepted (paper Tables 5 and 7);
- ROC-AUC and TPR at 1% and 5% FPR, normal test examples as the negatives
  (beyond the paper);
- the combined system of the paper's Fig. 9 and Table 6 (`system_accuracy`).
IGSM rows count every attacked example, fooled or not, as the paper's Table 6
does (its classifier is right on 99.84% of the 5-iteration examples). C&W rows
count only successful examples: the paper detects "adversarial examples", and
C&W returns a failed example unchanged.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import torch
from scipy.stats import rankdata

from cull.schema import ROC_FPRS, count_of
from cull.training import predict_logits

LN2 = math.log(2.0)  # the Jensen-Shannon divergence in nats never exceeds ln 2
ACCEPTANCE_ROUNDING_TOL = 1e-9  # absorbs float error in acceptance * n (0.9 * 37 = 33.300000000000004)
FPRS = {"tpr_at_1fpr": 0.01, "tpr_at_5fpr": 0.05}  # metric key -> false-positive rate on normal test examples
CDF_POINTS = 200  # points kept per curve in the CDF plot data
ADVERSARIAL_IMAGES = ("igsm_adv_", "cw_adv")  # attacks.npz arrays that must be finite (cw_l2 is NaN where C&W failed)
DATA_KEYS = ("val_x", "val_y", "test_x", "test_y")  # what a detector stage reads of the dataset
ATTACK_KEYS = ("igsm_index", "igsm_y", "cw_index", "cw_source", "cw_kappa", "cw_adv", "cw_success")  # of an attacks npz


# ---------------------------------------------------------------- divergences


def log_probs(logits) -> np.ndarray:
    """Log-softmax in float64.

    Parameters
    ----------
    logits : (N, K) tensor or array of finite raw model outputs.

    Returns
    -------
    (N, K) float64 array of log-probabilities, all finite and <= 0.
    """
    logits = logits if torch.is_tensor(logits) else torch.as_tensor(np.asarray(logits))
    if logits.ndim != 2:
        raise ValueError(f"logits: expected shape (N, K), got {tuple(logits.shape)}")
    logits = logits.detach().cpu().double()
    if not torch.isfinite(logits).all():
        raise ValueError("logits: expected finite values, found NaN or inf")
    return torch.log_softmax(logits, dim=1).numpy()


def _kl(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """(N,) D_KL(P || Q) = sum_i p_i (log p_i - log q_i) from (N, K) log-probabilities."""
    p = np.exp(log_p)
    # Guard: a term with p_i = 0 is 0 (the 0 log 0 = 0 convention). exp may
    # underflow to 0 for log p < -745; log-probs from finite logits are finite.
    terms = np.where(p > 0.0, p * (log_p - log_q), 0.0)
    return np.maximum(terms.sum(axis=1), 0.0)  # clip float rounding below 0 (~ -1e-17)


def _js(log_p: np.ndarray, log_q: np.ndarray) -> np.ndarray:
    """(N,) Jensen-Shannon divergence, M = (P + Q) / 2 taken in log space."""
    log_m = np.logaddexp(log_p, log_q) - LN2
    return np.clip(0.5 * _kl(log_p, log_m) + 0.5 * _kl(log_q, log_m), 0.0, LN2)


# kind -> (N,) score from (log P_u, log P_s)
DIVERGENCES = {
    "kl": lambda log_u, log_s: _kl(log_u, log_s),  # D_KL(P_u || P_s), the paper's
    "reverse": lambda log_u, log_s: _kl(log_s, log_u),  # D_KL(P_s || P_u)
    "js": _js,  # symmetric, in [0, ln 2]
}


def _check_kind(kind: str) -> str:
    if kind not in DIVERGENCES:
        raise ValueError(f"divergence: expected one of {', '.join(DIVERGENCES)}, got {kind!r}")
    return kind


def divergence(unsanitized_logits, sanitized_logits, *, kind: str = "kl") -> np.ndarray:
    """Per-example divergence between the two models' softmax outputs.

    Parameters
    ----------
    unsanitized_logits, sanitized_logits : (N, K) tensors or arrays of logits
        of the same N inputs on the unsanitized and the sanitized model.
    kind : {"kl", "reverse", "js"}, default "kl"
        "kl" is D_KL(P_u || P_s) (paper §2.4), "reverse" is D_KL(P_s || P_u),
        "js" the Jensen-Shannon divergence.

    Returns
    -------
    (N,) float64 array, >= 0 (``"js"``: <= ln 2). Higher = models disagree more
    = more likely adversarial. 0 for identical outputs.
    """
    return all_divergences(unsanitized_logits, sanitized_logits)[_check_kind(kind)]


def all_divergences(unsanitized_logits, sanitized_logits) -> dict[str, np.ndarray]:
    """Every kind in `DIVERGENCES` at once: kind -> (N,) float64; see `divergence`."""
    log_u, log_s = log_probs(unsanitized_logits), log_probs(sanitized_logits)
    if log_u.shape != log_s.shape:
        raise ValueError(
            f"logits: unsanitized has shape {log_u.shape}, sanitized {log_s.shape}; expected equal"
        )
    return {kind: fn(log_u, log_s) for kind, fn in DIVERGENCES.items()}


# ---------------------------------------------------------------- threshold and metrics


def _scores(values, name: str, *, allow_empty: bool = False) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D score array, got shape {values.shape}")
    if not allow_empty and len(values) == 0:
        raise ValueError(f"{name}: expected at least one score, got none")
    if np.isnan(values).any():
        raise ValueError(f"{name}: scores contain NaN")
    return values


def _rate(value: float, name: str, *, low: float, high: float) -> float:
    if not low < value <= high:
        raise ValueError(f"{name}: expected a value in ({low}, {high}], got {value}")
    return float(value)


def calibrate_threshold(normal_scores, *, acceptance: float) -> float:
    """Smallest threshold tau that accepts at least `acceptance` of `normal_scores`.

    Rule: sort the n scores, s_1 <= ... <= s_n, let k = ceil(acceptance * n)
    and tau = s_k (numpy's ``quantile(..., method="inverted_cdf")``). Then
    ``mean(scores <= tau) >= acceptance``, with equality when acceptance * n is
    a whole number and s_k is not tied with s_(k+1); it is the smallest rate
    >= the target that the n scores allow.

    Parameters
    ----------
    normal_scores : (n,) divergences of held-out normal examples (validation
        split; never the test set). Higher = more likely adversarial.
    acceptance : float in (0, 1]
        Target fraction of normal examples accepted (paper: 0.98 MNIST, 0.94 SVHN).

    Returns
    -------
    tau : float. Accept x iff score(x) <= tau.
    """
    scores = np.sort(_scores(normal_scores, "normal_scores"))
    acceptance = _rate(acceptance, "acceptance", low=0.0, high=1.0)
    k = math.ceil(acceptance * len(scores) - ACCEPTANCE_ROUNDING_TOL)
    return float(scores[max(k, 1) - 1])


def accept_mask(scores, *, threshold: float) -> np.ndarray:
    """(N,) bool, True where the detector accepts (score <= threshold)."""
    return _scores(scores, "scores", allow_empty=True) <= threshold


def detection_rate(adversarial_scores, *, threshold: float) -> float:
    """Detection accuracy on adversarial examples: fraction with score > threshold."""
    scores = _scores(adversarial_scores, "adversarial_scores")
    return float(np.mean(scores > threshold))


def roc_auc(normal_scores, adversarial_scores) -> float:
    """ROC-AUC with adversarial as the positive class and higher score = more adversarial.

    Rank-based (Mann-Whitney U): the probability that a random adversarial
    example scores above a random normal one, ties counting one half. 1.0 means
    perfectly separated, 0.5 indistinguishable.

    Parameters
    ----------
    normal_scores : (n_neg,) scores of normal (test) examples.
    adversarial_scores : (n_pos,) scores of adversarial examples.
    """
    neg = _scores(normal_scores, "normal_scores")
    pos = _scores(adversarial_scores, "adversarial_scores")
    ranks = rankdata(np.concatenate([pos, neg]))  # average ranks: ties get half credit
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def tpr_at_fpr(normal_scores, adversarial_scores, *, fpr: float) -> float:
    """Fraction of adversarial examples rejected at a threshold set on normal examples.

    The threshold is ``calibrate_threshold(normal_scores, acceptance=1 - fpr)``,
    so at most `fpr` of `normal_scores` are rejected (exactly `fpr` when fpr * n
    is whole and there are no ties).

    Parameters
    ----------
    normal_scores : (n_neg,) scores of normal test examples (where FPR is measured).
    adversarial_scores : (n_pos,) scores of adversarial examples.
    fpr : float in (0, 1).
    """
    fpr = _rate(fpr, "fpr", low=0.0, high=1.0)
    if fpr >= 1.0:
        raise ValueError(f"fpr: expected a value below 1, got {fpr}")
    tau = calibrate_threshold(normal_scores, acceptance=1.0 - fpr)
    return detection_rate(adversarial_scores, threshold=tau)


def system_accuracy(scores, predictions, labels, *, threshold: float, adversarial: bool) -> dict:
    """Accuracy of the paper's Fig. 9 system: detector, then the sanitized classifier.

    The system rejects x if score(x) > threshold, else outputs the sanitized
    model's class. On a normal x it is correct iff it accepts x AND the class is
    right; on an adversarial x iff it rejects x OR the class is the true one.

    Parameters
    ----------
    scores : (N,) divergences. Higher = more likely adversarial.
    predictions : (N,) int classes from the sanitized model.
    labels : (N,) int true classes (for C&W: the source class, not the target).
    threshold : float, tau.
    adversarial : bool, whether all N examples are adversarial or all normal.

    Returns
    -------
    dict with ``detect`` (fraction rejected if adversarial, accepted if normal),
    ``classifier`` (fraction classified right) and ``system`` (fraction the
    system gets right), each a float in [0, 1].
    """
    scores = _scores(scores, "scores")
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if not len(scores) == len(predictions) == len(labels):
        raise ValueError(
            f"expected equal lengths, got {len(scores)} scores, "
            f"{len(predictions)} predictions, {len(labels)} labels"
        )
    accepted = scores <= threshold
    right = predictions == labels
    correct = (~accepted | right) if adversarial else (accepted & right)
    detected = ~accepted if adversarial else accepted
    return {
        "detect": float(detected.mean()),
        "classifier": float(right.mean()),
        "system": float(correct.mean()),
    }


# ---------------------------------------------------------------- the pipeline stage


def igsm_iterations(attacks: Mapping[str, np.ndarray]) -> list[int]:
    """Iteration counts k with an ``igsm_adv_<k>`` array in an attacks archive, ascending."""
    ks = []
    for key in attacks:
        if key.startswith("igsm_adv_"):
            match = re.fullmatch(r"igsm_adv_(\d+)", key)
            if not match:
                raise ValueError(f"attacks: expected keys igsm_adv_<iterations>, found {key!r}")
            ks.append(int(match.group(1)))
    if not ks:
        raise ValueError(f"attacks: no igsm_adv_<k> arrays (found {sorted(attacks)})")
    return sorted(ks)


def kappa_key(kappa: float) -> str:
    """Name of a C&W confidence in metrics and plots: 0 -> '0', 0.1 -> '0.1'."""
    return f"{float(kappa):g}"


def _check_attacks(data: Mapping, attacks: Mapping) -> None:
    test_y, image_shape = np.asarray(data["test_y"]), tuple(data["test_x"].shape[1:])
    for prefix, label_key in (("igsm", "igsm_y"), ("cw", "cw_source")):
        index, labels = np.asarray(attacks[f"{prefix}_index"]), np.asarray(attacks[label_key])
        if len(index) != len(labels):
            raise ValueError(f"attacks: {prefix}_index has {len(index)} entries, {label_key} {len(labels)}")
        if len(index) and (index.min() < 0 or index.max() >= len(test_y)):
            raise ValueError(f"attacks: {prefix}_index outside the {len(test_y)} test examples")
        if not np.array_equal(test_y[index], labels):
            raise ValueError(f"attacks: {label_key} disagrees with test_y at {prefix}_index; wrong dataset?")
    keys = [f"igsm_adv_{k}" for k in igsm_iterations(attacks)] + ["cw_adv"]
    for key in keys:
        n = len(attacks["cw_index"] if key == "cw_adv" else attacks["igsm_index"])
        images = attacks[key]
        if images.shape != (n, *image_shape):
            raise ValueError(f"attacks: {key} has shape {images.shape}, expected {(n, *image_shape)}")
        if images.dtype.kind != "f":
            raise ValueError(f"attacks: {key} must hold float pixels in [0, 1], got dtype {images.dtype}")
        if len(images) and not (np.isfinite(images).all() and images.min() >= 0.0 and images.max() <= 1.0):
            raise ValueError(f"attacks: {key} must hold pixels in [0, 1], got [{images.min()}, {images.max()}]")
    for key in ("cw_kappa", "cw_success"):
        if len(attacks[key]) != len(attacks["cw_index"]):
            raise ValueError(f"attacks: {key} has {len(attacks[key])} entries, cw_index {len(attacks['cw_index'])}")


def attack_sets(data: Mapping, attacks: Mapping) -> dict[str, np.ndarray]:
    """Image set name -> (N, C, H, W) images: ``val``, ``test``, ``igsm_<k>`` per iteration count, ``cw``."""
    _check_attacks(data, attacks)
    sets = {"val": data["val_x"], "test": data["test_x"], "cw": attacks["cw_adv"]}
    sets.update({f"igsm_{k}": attacks[f"igsm_adv_{k}"] for k in igsm_iterations(attacks)})
    return sets


def _model_scores(unsanitized, sanitized, images, *, device) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """All divergences (N,) and the sanitized model's classes (N,) for (N, C, H, W) images."""
    logits_u = predict_logits(unsanitized, images, device=device)
    logits_s = predict_logits(sanitized, images, device=device)
    return all_divergences(logits_u, logits_s), logits_s.argmax(1).numpy()


def score_attacks(data: Mapping, attacks: Mapping, *, unsanitized, sanitized, device) -> dict[str, np.ndarray]:
    """Divergences and sanitized-model classes of normal and adversarial examples.

    Parameters
    ----------
    data : mapping with ``val_x``, ``test_x`` (N, C, H, W) uint8 and ``val_y``,
        ``test_y`` (N,) int, as in data/dataset.npz.
    attacks : mapping as in data/attacks/<model>.npz: ``igsm_index``, ``igsm_y``,
        ``igsm_adv_<k>`` (n, C, H, W) float in [0, 1] per iteration count k;
        ``cw_index``, ``cw_source``, ``cw_kappa``, ``cw_success``, ``cw_adv`` (M, C, H, W).
    unsanitized, sanitized : models in eval mode (see `cull.models.load_checkpoint`).
    device : torch device to run them on.

    Returns
    -------
    dict of arrays, one entry per (set, kind) with set in val, test, igsm_<k>, cw:
    ``<set>_<kind>`` (n,) float64 divergence, ``<set>_pred`` (n,) sanitized class;
    plus ``val_y``, ``test_y``, ``igsm_y``, ``igsm_iterations``, ``cw_source``,
    ``cw_kappa``, ``cw_success`` so the metrics and figures need nothing else.
    C&W entries cover every attempted example; filter with ``cw_success``.
    """
    sets = attack_sets(data, attacks)
    ks = igsm_iterations(attacks)
    out = {
        "val_y": np.asarray(data["val_y"]),
        "test_y": np.asarray(data["test_y"]),
        "igsm_y": np.asarray(attacks["igsm_y"]),
        "igsm_iterations": np.asarray(ks, dtype=np.int64),
        "cw_source": np.asarray(attacks["cw_source"]),
        "cw_kappa": np.asarray(attacks["cw_kappa"], dtype=np.float64),
        "cw_success": np.asarray(attacks["cw_success"], dtype=bool),
    }
    for name, images in sets.items():
        divs, pred = _model_scores(unsanitized, sanitized, images, device=device)
        out.update({f"{name}_{kind}": d for kind, d in divs.items()})
        out[f"{name}_pred"] = pred
    return out


def _adversarial_sets(scores: Mapping) -> dict[str, dict[str, tuple[str, str, np.ndarray | None]]]:
    """{"igsm": {"5": (set, label key, row mask)}, "cw": {"0": ...}}: the rows each setting counts."""
    igsm = {str(k): (f"igsm_{k}", "igsm_y", None) for k in scores["igsm_iterations"]}
    kappa, success = scores["cw_kappa"], scores["cw_success"]
    cw = {kappa_key(k): ("cw", "cw_source", (kappa == k) & success) for k in np.unique(kappa)}
    return {"igsm": igsm, "cw": cw}


def _pick(scores: Mapping, key: str, mask: np.ndarray | None) -> np.ndarray:
    values = np.asarray(scores[key])
    return values if mask is None else values[mask]


def _setting_row(scores: Mapping, setting: tuple, *, kind: str, normal: np.ndarray, tau: float, system: bool) -> dict:
    """Metrics of one attack setting; with `system`, also the Fig. 9 classifier and system accuracy.

    Rates are `cull.schema` count leaves over the setting's n examples; AUC and
    TPR at a fixed FPR are plain numbers (None when n = 0).
    """
    name, label_key, mask = setting
    adv = _pick(scores, f"{name}_{kind}", mask)
    rejected = adv > tau
    row = {"n": int(len(adv)), "detect": count_of(rejected)}
    if len(adv) == 0:  # e.g. a C&W confidence with no successful example
        row.update(dict.fromkeys(["auc", *FPRS, "roc"]))
    else:
        row["auc"] = roc_auc(normal, adv)
        row.update({key: tpr_at_fpr(normal, adv, fpr=fpr) for key, fpr in FPRS.items()})
        row["roc"] = [tpr_at_fpr(normal, adv, fpr=fpr) for fpr in ROC_FPRS]
    if system:
        right = _pick(scores, f"{name}_pred", mask) == _pick(scores, label_key, mask)
        row.update(classifier=count_of(right), system=count_of(rejected | right),
                   accepted_classifier=count_of(right[~rejected]))  # Table 6 as the paper computed it
    return row


def _detector_row(scores: Mapping, kind: str, settings: dict, *, acceptance: float, system: bool) -> dict:
    """Threshold, normal acceptance and one row per attack setting for the detector whose scores are ``<set>_<kind>``."""
    tau = calibrate_threshold(scores[f"val_{kind}"], acceptance=acceptance)
    normal = _scores(scores[f"test_{kind}"], "test scores")
    row = {
        "threshold": tau,
        "val_accept": count_of(accept_mask(scores[f"val_{kind}"], threshold=tau)),
        "test_accept": count_of(accept_mask(normal, threshold=tau)),
    }
    for attack, table in settings.items():
        row[attack] = {key: _setting_row(scores, setting, kind=kind, normal=normal, tau=tau, system=system)
                       for key, setting in table.items()}
    return row


def detection_metrics(scores: Mapping[str, np.ndarray], *, acceptance: float, divergence: str = "kl",
                      baselines: Mapping[str, dict] | None = None) -> dict:
    """The stage's metrics from the arrays of `score_attacks` (and, for `baselines`, `cull.detectors`).

    Every detector, the divergences and the baselines alike, has its tau
    calibrated on the validation normals at `acceptance` (`calibrate_threshold`)
    and is scored on the same examples. The headline kind `divergence` gets full
    rows: detection accuracy, AUC, TPR at 1% / 5% FPR, the TPR at each of
    `ROC_FPRS` (``roc``), and the Fig. 9 system's classifier and overall
    accuracy. The other divergences (under ``other_divergences``) and the
    baseline detectors of `baselines`, name -> its settings (under ``baselines``,
    the settings as ``settings``, so a reader can score new images alike; their
    scores are ``<set>_<name>`` arrays of `scores`) get their threshold, the
    normal acceptance and the same rows less the system's. Settings are keyed by IGSM
    iteration count ("5") and C&W confidence ("0.1"); C&W rows count successful
    examples only; ``n`` is the number of examples a row counts, and a row with
    n = 0 holds None (JSON null).
    """
    _check_kind(divergence)
    settings = _adversarial_sets(scores)
    head = _detector_row(scores, divergence, settings, acceptance=acceptance, system=True)
    others = {kind: _detector_row(scores, kind, settings, acceptance=acceptance, system=False)
              for kind in DIVERGENCES if kind != divergence}
    accepted = accept_mask(scores[f"test_{divergence}"], threshold=head["threshold"])
    right = np.asarray(scores["test_pred"]) == np.asarray(scores["test_y"])
    normal = {
        "n_val": int(len(scores[f"val_{divergence}"])),
        "n_test": int(len(scores[f"test_{divergence}"])),
        "val_accept": head["val_accept"],
        "test_accept": head["test_accept"],
        "classifier": count_of(right),
        "system_acc": count_of(accepted & right),  # the Fig. 9 system is right on a normal x iff it accepts and classifies it right
    }
    return {
        "divergence": divergence,
        "threshold": head["threshold"],
        "normal": normal,
        "igsm": head["igsm"],
        "cw": head["cw"],
        "other_divergences": others,
        "baselines": {name: {"settings": dict(config),
                             **_detector_row(scores, name, settings, acceptance=acceptance, system=False)}
                      for name, config in (baselines or {}).items()},
    }


def empirical_cdf(values, *, max_points: int = CDF_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Points (value, fraction of values <= value) of the empirical CDF, at most `max_points`.

    The points sit at evenly spaced ranks of the sorted values, always with the
    smallest and the largest, so the curve keeps its range.
    """
    values = np.sort(_scores(values, "values", allow_empty=True))
    if len(values) == 0:
        return values, values.copy()
    ranks = np.unique(np.round(np.linspace(0, len(values) - 1, min(max_points, len(values)))).astype(int))
    points = values[ranks]
    return points, np.searchsorted(values, points, side="right") / len(values)


def cdf_rows(scores: Mapping[str, np.ndarray], *, max_points: int = CDF_POINTS) -> list[dict]:
    """Long-format CDF plot data (paper Fig. 7, 8, 10): rows of set, divergence, value, cdf.

    Sets: ``normal`` (test normals), ``igsm-<k>``, ``cw-<kappa>`` (successful
    C&W examples only); every kind in `DIVERGENCES`; at most `max_points` rows
    per (set, kind).
    """
    sets = {"normal": ("test", None)}
    for attack, table in _adversarial_sets(scores).items():
        sets.update({f"{attack}-{key}": (name, mask) for key, (name, _, mask) in table.items()})
    rows = []
    for set_name, (name, mask) in sets.items():
        for kind in DIVERGENCES:
            points, cdf = empirical_cdf(_pick(scores, f"{name}_{kind}", mask), max_points=max_points)
            rows += [
                {"set": set_name, "divergence": kind, "value": float(v), "cdf": float(c)}
                for v, c in zip(points, cdf)
            ]
    return rows


def summarize(metrics: dict) -> str:
    """One line for the end of the stage."""

    def pct(leaf):
        return "n/a" if leaf["rate"] is None else f"{100 * leaf['rate']:.1f}%"

    normal = metrics["normal"]
    igsm = ", ".join(f"{k}:{pct(r['detect'])}" for k, r in metrics["igsm"].items())
    cw = ", ".join(f"{k}:{pct(r['detect'])}" for k, r in metrics["cw"].items())
    return (
        f"detect: {metrics['divergence']} tau={metrics['threshold']:.4g} accepts "
        f"{pct(normal['val_accept'])} val / {pct(normal['test_accept'])} test normals; "
        f"detected IGSM {igsm}; C&W {cw}; system on normals {pct(normal['system_acc'])}"
    )


def read_detect_metrics(obj, path, detector: str | None = None) -> tuple[str, float, dict]:
    """(detector name, tau, its metrics row) from a detect stage's metrics JSON; ValueError if it is another kind of file.

    `detector` is the headline divergence when None, else a divergence kind or
    a baseline of the file's ``baselines``. A filter or aggregate file also
    holds a "threshold" (a sanitization threshold, or a Stat): using it as tau
    would make every decision wrong, so such a file is refused.
    """
    if not isinstance(obj, dict) or not {"divergence", "threshold", "normal"} <= set(obj):
        found = ", ".join(sorted(obj)[:6]) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(f"{path}: not a detect stage metrics file (expected divergence, threshold and normal, "
                         f"found {found}; use metrics/models/<model>/seed-<s>/detect.json)")
    kind = obj["divergence"]
    if kind not in DIVERGENCES:
        raise ValueError(f"{path}: divergence: expected one of {', '.join(DIVERGENCES)}, got {kind!r}")
    rows = {kind: obj, **(obj.get("other_divergences") or {}), **(obj.get("baselines") or {})}
    name = kind if detector is None else detector
    if name not in rows:
        raise ValueError(f"{path}: holds no threshold for detector {name!r} (it has {', '.join(rows)})")
    row = rows[name]
    tau = row.get("threshold") if isinstance(row, dict) else None
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau < 0:
        raise ValueError(f"{path}: threshold of {name}: expected a finite number >= 0, got {tau!r}")
    return name, float(tau), row
