"""The Mahalanobis detector, simple form: Lee, Lee, Lee and Shin, 'A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks', NeurIPS 2018, https://arxiv.org/abs/1807.03888.

Class-conditional Gaussians with one tied covariance are fitted on the
penultimate-layer features of the training images; an image's score is its
smallest Mahalanobis distance (squared) to a class mean. The paper's input
pre-processing and layer ensemble are left out (the 'simple form').
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cull.models import to_float

BATCH = 1000


@torch.no_grad()
def penultimate_features(model: torch.nn.Module, images: np.ndarray, *, device="cpu", batch: int = BATCH) -> np.ndarray:
    """(N, D) float64 activations of the last hidden layer of a `cull.models.CWNet` (after its ReLU)."""
    head = model.classifier[:-1]  # every layer but the final linear one
    out = []
    for start in range(0, len(images), batch):
        chunk = torch.as_tensor(np.asarray(images[start:start + batch])).to(device)
        x = to_float(chunk) if chunk.dtype == torch.uint8 else chunk.float()
        out.append(head(model.features(x)).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


@dataclass(frozen=True)
class ClassGaussians:
    """Class means (K, D) and the precision (D, D), the pseudo-inverse of the tied covariance."""

    means: np.ndarray
    precision: np.ndarray


def fit_class_gaussians(features: np.ndarray, labels: np.ndarray, *, num_classes: int = 10) -> ClassGaussians:
    """Means per class and the tied covariance (1/N) sum_c sum_{i in c} (f_i - mu_c)(f_i - mu_c)^T.

    Raises ValueError if a class has no example. The precision is a
    pseudo-inverse: ReLU features have dead units, so the covariance is singular.
    """
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    missing = [c for c in range(num_classes) if not (labels == c).any()]
    if missing:
        raise ValueError(f"mahalanobis: no training feature of class(es) {missing}")
    means = np.stack([features[labels == c].mean(0) for c in range(num_classes)])
    centered = features - means[labels]
    covariance = centered.T @ centered / len(features)
    return ClassGaussians(means=means, precision=np.linalg.pinv(covariance, hermitian=True))


def mahalanobis_score(fit: ClassGaussians, features: np.ndarray) -> np.ndarray:
    """(N,) float64: min over classes c of (f - mu_c)^T P (f - mu_c); higher = more likely adversarial."""
    features = np.asarray(features, dtype=np.float64)
    d = features[:, None, :] - fit.means[None, :, :]  # (N, K, D)
    return np.einsum("nkd,de,nke->nk", d, fit.precision, d).min(1)
