import numpy as np
import pytest
import torch

from cull.params import ParamsError
from cull.scoring import keep_mask, log_confidence, one_minus_confidence, random_like, sanitize, set_sizes


def test_confidence_resolves_one_minus_1e_minus_7():
    margins = np.array([17.5, 20.0, 25.0])  # 1 - p = 9 e^-m / (1 + 9 e^-m): 2.3e-7, 1.9e-8, 1.3e-10
    logits = torch.zeros(3, 10)
    logits[:, 0] = torch.tensor(margins, dtype=torch.float32)
    labels = np.zeros(3, dtype=int)
    assert torch.softmax(logits, 1)[1:, 0].eq(1.0).all()  # float32 rounds both to exactly 1
    log_conf = log_confidence(logits, labels)
    expected = 9 * np.exp(-margins) / (1 + 9 * np.exp(-margins))
    np.testing.assert_allclose(one_minus_confidence(log_conf), expected, rtol=1e-4)
    assert keep_mask(log_conf, 0.9999999).tolist() == [False, True, True]
    assert keep_mask(log_conf, 0.99999999).tolist() == [False, False, True]


def test_planted_outlier_scores_lowest():
    rng = np.random.default_rng(0)
    logits = torch.tensor(rng.normal(size=(50, 10)), dtype=torch.float32)
    labels = logits.argmax(1).numpy().copy()
    labels[17] = (labels[17] + 1) % 10  # a mislabelled example
    assert np.argmin(log_confidence(logits, labels)) == 17


def test_threshold_zero_keeps_everything_and_bounds():
    log_conf = np.log(np.array([1e-30, 0.5, 1.0]))
    assert keep_mask(log_conf, 0).all()
    assert keep_mask(log_conf, 0.5).tolist() == [False, True, True]
    for bad in (1.0, 1.5, -0.1):
        with pytest.raises(ParamsError, match=r"expected a threshold in \[0, 1\)"):
            keep_mask(log_conf, bad)


def test_sanitize_summary_and_empty_class_warning():
    labels = np.array([0, 0, 1, 1, 2])
    log_conf = np.log(np.array([0.99, 0.5, 0.99, 0.99, 0.1]))
    with pytest.warns(UserWarning, match=r"classes \[2, 3, 4, 5, 6, 7, 8, 9\] have no examples left"):
        kept, summary = sanitize(log_conf, labels, threshold=0.9)
    assert kept.tolist() == [0, 2, 3]
    assert summary["size"] == 3 and summary["class_counts"][:3] == [1, 2, 0]


def test_sanitize_everything_removed_is_an_error():
    with pytest.raises(ValueError, match="nothing to train on"):
        sanitize(np.log(np.array([0.1, 0.2])), np.array([0, 1]), threshold=0.9)


def test_set_sizes_are_monotone():
    rng = np.random.default_rng(1)
    log_conf = -rng.exponential(1e-3, size=1000)
    labels = rng.integers(0, 10, size=1000)
    rows = set_sizes(log_conf, labels, [0, 0.9, 0.999, 0.9999])
    sizes = [r["size"] for r in rows]
    assert sizes[0] == 1000 and sizes == sorted(sizes, reverse=True)
    assert all(sum(r["class_counts"]) == r["size"] for r in rows)


def test_nan_scores_rejected():
    with pytest.raises(ValueError, match="NaN"):
        keep_mask(np.array([np.nan, -1.0]), 0.5)


def test_random_like_matches_class_counts_not_membership():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, size=2000)
    # Class 3 is all outliers: sanitization drops most of it; the others keep their top half.
    log_conf = np.log(np.where(labels == 3, 0.5, 0.999999)) - rng.uniform(0, 1e-6, size=2000)
    log_conf[::2] = np.log(0.99)
    kept, summary = sanitize(log_conf, labels, threshold=0.9999)
    control, control_summary = random_like(log_conf, labels, threshold=0.9999, seed=0)
    assert np.bincount(labels[control], minlength=10).tolist() == summary["class_counts"]
    assert control_summary["class_counts"] == summary["class_counts"] and control_summary["size"] == summary["size"]
    assert np.all(np.diff(control) > 0)  # sorted, no repeats
    overlap = np.isin(control, kept).mean()
    assert control_summary["overlap"] == pytest.approx(overlap) and 0.3 < overlap < 0.7  # random: about half
    again, _ = random_like(log_conf, labels, threshold=0.9999, seed=0)
    other, _ = random_like(log_conf, labels, threshold=0.9999, seed=1)
    assert np.array_equal(control, again) and not np.array_equal(control, other)


def test_mean_confidence_per_class():
    from cull.scoring import mean_confidence

    labels = np.array([0, 0, 1, 2, 2, 2])
    conf = np.array([0.5, 1.0, 0.9, 0.1, 0.2, 0.3])
    means = mean_confidence(np.log(conf), labels, num_classes=4)
    assert means[:3] == pytest.approx([0.75, 0.9, 0.2]) and means[3] is None  # class 3 has no image
