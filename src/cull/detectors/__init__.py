"""Baseline detectors, beside the paper's KL detector (`cull.detection`): one module per detector.

Each maps (model, images) to one score per image, higher meaning more likely
adversarial, so every detector is thresholded the same way: at the same
acceptance of the validation normals (`cull.detection.calibrate_threshold`),
and scored on the same adversarial examples (`cull.detection.detection_metrics`).

- `cull.detectors.squeeze`: feature squeezing (Xu, Evans and Qi, NDSS 2018).
- `cull.detectors.mahalanobis`: class-conditional Gaussians with a tied
  covariance on the penultimate layer (Lee et al., NeurIPS 2018, simple form).

Both watch the classifier they guard, the sanitized model; the KL detectors
watch it and the unsanitized model.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from cull.artifacts import load_npz
from cull.detectors.mahalanobis import ClassGaussians, fit_class_gaussians, mahalanobis_score, penultimate_features
from cull.detectors.squeeze import bit_depth, feature_squeezing_score, median_smooth
from cull.schema import BASELINES  # params detect.baselines chooses among these



def baseline_scores(model, sets: Mapping[str, np.ndarray], *, names, fit_images: np.ndarray,
                    fit_labels: np.ndarray, squeeze_bits: int = 1, squeeze_median: int = 2,
                    device="cpu") -> dict[str, np.ndarray]:
    """Scores of the baseline detectors `names` on every image set, keyed ``<set>_<name>``.

    Parameters
    ----------
    model : the guarded classifier (a `cull.models.CWNet` in eval mode).
    sets : set name -> (N, C, H, W) images, uint8 or float in [0, 1].
    names : subset of `BASELINES`.
    fit_images, fit_labels : the classifier's training images and labels; the
        Mahalanobis detector fits its class Gaussians on their features.
    squeeze_bits, squeeze_median : the squeezers (1 bit and 2x2 for MNIST).

    Returns
    -------
    dict of (N,) float64 arrays, one per (set, name); higher = more likely adversarial. With
    "mahalanobis", also the fit: ``mahalanobis_means`` (K, D) and ``mahalanobis_precision`` (D, D),
    which `cull check` reloads to score new images.
    """
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"detect.baselines: expected names among {', '.join(BASELINES)}, got {unknown}")
    out = {}
    if "mahalanobis" in names:
        fit = fit_class_gaussians(penultimate_features(model, fit_images, device=device), fit_labels,
                                  num_classes=model.classifier[-1].out_features)
        out.update(mahalanobis_means=fit.means, mahalanobis_precision=fit.precision)
    for set_name, images in sets.items():
        if "squeeze" in names:
            out[f"{set_name}_squeeze"] = feature_squeezing_score(model, images, bits=squeeze_bits,
                                                                 median=squeeze_median, device=device)
        if "mahalanobis" in names:
            out[f"{set_name}_mahalanobis"] = mahalanobis_score(fit, penultimate_features(model, images, device=device))
    return out


GAUSSIAN_KEYS = ("mahalanobis_means", "mahalanobis_precision")  # the fit, as `baseline_scores` returns it


def load_gaussians(path) -> ClassGaussians:
    """The Mahalanobis fit the detect stage stored in its .npz at `path` (keys `GAUSSIAN_KEYS`)."""
    fit = load_npz(path, GAUSSIAN_KEYS)
    return ClassGaussians(means=fit["mahalanobis_means"], precision=fit["mahalanobis_precision"])


__all__ = ["BASELINES", "GAUSSIAN_KEYS", "ClassGaussians", "baseline_scores", "load_gaussians", "bit_depth", "feature_squeezing_score", "fit_class_gaussians",
           "mahalanobis_score", "median_smooth", "penultimate_features"]
