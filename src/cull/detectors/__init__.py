"""Baseline detectors, beside the paper's KL detector (`cull.detection`): one module per detector.

Each maps (model(s), images) to one score per image, higher meaning more
likely adversarial, so every detector is thresholded the same way: at a
quantile of its scores on the validation normals (`cull.detection.calibrate_threshold`).

- `cull.detectors.squeeze`: feature squeezing (Xu, Evans and Qi, NDSS 2018).
- `cull.detectors.mahalanobis`: class-conditional Gaussians with a tied
  covariance on the penultimate layer (Lee et al., NeurIPS 2018, simple form).
"""
from cull.detectors.mahalanobis import fit_class_gaussians, mahalanobis_score, penultimate_features
from cull.detectors.squeeze import bit_depth, feature_squeezing_score, median_smooth

__all__ = ["bit_depth", "feature_squeezing_score", "fit_class_gaussians", "mahalanobis_score", "median_smooth",
           "penultimate_features"]
