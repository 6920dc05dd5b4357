"""The baseline detectors (cull.detectors) against their definitions, on known inputs and a tiny CWNet."""
import numpy as np
import pytest
import torch
from scipy.spatial import distance

from cull.detectors import (bit_depth, feature_squeezing_score, fit_class_gaussians, mahalanobis_score,
                            median_smooth, penultimate_features)
from cull.models import ModelConfig, build_model


def test_bit_depth_one_bit_thresholds_at_one_half():
    x = torch.tensor([0.0, 0.2, 0.49, 0.51, 0.9, 1.0]).view(1, 1, 2, 3)
    assert bit_depth(x, 1).flatten().tolist() == [0.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    assert bit_depth(x, 2).flatten().tolist() == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 1, 1])


def test_median_smooth_two_by_two_matches_its_definition():
    rng = np.random.default_rng(0)
    x = rng.random((1, 1, 5, 6))
    out = median_smooth(torch.as_tensor(x), 2).numpy()[0, 0]
    padded = np.pad(x[0, 0], ((1, 0), (1, 0)), mode="symmetric")  # scipy's 'reflect': row -1 is row 0
    for i in range(5):
        for j in range(6):
            window = np.sort(padded[i:i + 2, j:j + 2].ravel())  # rows i-1..i, columns j-1..j
            assert out[i, j] == window[2]  # the upper of the two middle values


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig()).eval()


def test_feature_squeezing_score_is_the_largest_l1_change(model):
    images = np.random.default_rng(1).integers(0, 256, (7, 1, 28, 28), dtype=np.uint8)
    scores = feature_squeezing_score(model, images, batch=3)
    x = torch.as_tensor(images).float() / 255
    with torch.no_grad():
        p = torch.softmax(model(x).double(), 1)
        one_bit = (p - torch.softmax(model(bit_depth(x, 1)).double(), 1)).abs().sum(1)
        median = (p - torch.softmax(model(median_smooth(x, 2)).double(), 1)).abs().sum(1)
    assert scores.shape == (7,) and scores.dtype == np.float64
    assert scores == pytest.approx(torch.maximum(one_bit, median).numpy(), rel=1e-4, abs=1e-7)  # batch-size rounding
    assert (scores >= 0).all() and (scores <= 2).all()


def test_mahalanobis_score_equals_scipy_distance():
    rng = np.random.default_rng(2)
    labels = np.repeat(np.arange(3), 40)
    features = rng.normal(size=(120, 4)) + labels[:, None] * 3.0
    fit = fit_class_gaussians(features, labels, num_classes=3)
    queries = rng.normal(size=(5, 4)) * 4
    expected = [min(distance.mahalanobis(q, fit.means[c], fit.precision) ** 2 for c in range(3)) for q in queries]
    assert mahalanobis_score(fit, queries) == pytest.approx(expected)
    covariance = sum(np.cov(features[labels == c].T, bias=True) * 40 for c in range(3)) / 120
    assert fit.precision == pytest.approx(np.linalg.inv(covariance))
    with pytest.warns(UserWarning, match=r"no training feature of class\(es\) \[3\]; fitted on the others"):
        partial = fit_class_gaussians(features, labels, num_classes=4)  # a sanitization can empty a class
    np.testing.assert_allclose(partial.means, fit.means)
    with pytest.warns(UserWarning, match=r"class\(es\) \[1\]"):
        without_one = fit_class_gaussians(features[labels != 1], labels[labels != 1], num_classes=3)
    assert without_one.means.shape == (2, 4)
    np.testing.assert_allclose(without_one.means, fit.means[[0, 2]])
    with pytest.raises(ValueError, match="no training feature of any of the 3 classes"):
        fit_class_gaussians(features, labels + 10, num_classes=3)


def test_penultimate_features_feed_the_last_layer(model):
    images = np.random.default_rng(3).integers(0, 256, (4, 1, 28, 28), dtype=np.uint8)
    f = penultimate_features(model, images)
    with torch.no_grad():
        logits = model(torch.as_tensor(images).float() / 255).double().numpy()
    last = model.classifier[-1]
    assert f.shape == (4, last.in_features)
    assert f @ last.weight.detach().double().numpy().T + last.bias.detach().double().numpy() == pytest.approx(logits, abs=1e-4)
