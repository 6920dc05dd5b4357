"""The Mahalanobis detector, simple form: Lee, Lee, Lee and Shin, 'A Simple Unified Framework for Detecting
Out-of-Distribution Samples and Adversarial Attacks', NeurIPS 2018, https://arxiv.org/abs/1807.03888.

Class-conditional Gaussians with one tied covariance are fitted on the
penultimate-layer features of the training images; an image's score is its
smallest Mahalanobis distance (squared) to a class mean. The paper's input
pre-processing and layer ensemble are left out (the 'simple form').
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from cull.models import to_float

BATCH = 1000


def penultimate(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, D) activations of the last hidden layer (differentiable): every layer but the final linear one.

    For a `cull.models.CWNet` (``features`` then ``classifier``) or an `nn.Sequential`.
    """
    if isinstance(model, torch.nn.Sequential):
        return model[:-1](x)
    return model.classifier[:-1](model.features(x))


@torch.no_grad()
def penultimate_features(model: torch.nn.Module, images, *, device="cpu", batch: int = BATCH) -> np.ndarray:
    """(N, D) float64 `penultimate` activations of (N, C, H, W) images, uint8 or float in [0, 1]."""
    out = []
    for start in range(0, len(images), batch):
        chunk = torch.as_tensor(images[start:start + batch]).to(device)
        x = to_float(chunk) if chunk.dtype == torch.uint8 else chunk.float()
        out.append(penultimate(model, x).double().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 0))


@dataclass(frozen=True)
class ClassGaussians:
    """Class means (K', D) and the precision (D, D), the pseudo-inverse of the tied covariance.

    K' counts the classes with training examples: a sanitization at a high
    threshold can empty a class, and a class the classifier never saw has no mean.
    """

    means: np.ndarray
    precision: np.ndarray


def fit_class_gaussians(features: np.ndarray, labels: np.ndarray, *, num_classes: int = 10) -> ClassGaussians:
    """Means per class and the tied covariance (1/N) sum_c sum_{i in c} (f_i - mu_c)(f_i - mu_c)^T.

    Classes without an example are left out, with a warning (ValueError if no
    class of the `num_classes` has one). The precision is a pseudo-inverse:
    ReLU features have dead units, so the covariance is singular.
    """
    features, labels = np.asarray(features, dtype=np.float64), np.asarray(labels)
    present = [c for c in range(num_classes) if (labels == c).any()]
    if not present:
        raise ValueError(f"mahalanobis: no training feature of any of the {num_classes} classes")
    if len(present) < num_classes:
        missing = sorted(set(range(num_classes)) - set(present))
        warnings.warn(f"mahalanobis: no training feature of class(es) {missing}; fitted on the others")
    keep = np.isin(labels, present)  # labels outside [0, num_classes) are not a class of the fit either
    features, labels = features[keep], np.searchsorted(present, labels[keep])  # labels -> rows of `means`
    means = np.stack([features[labels == i].mean(0) for i in range(len(present))])
    centered = features - means[labels]
    covariance = centered.T @ centered / len(features)
    return ClassGaussians(means=means, precision=np.linalg.pinv(covariance, hermitian=True))


def mahalanobis_score(fit: ClassGaussians, features: np.ndarray) -> np.ndarray:
    """(N,) float64: min over classes c of (f - mu_c)^T P (f - mu_c); higher = more likely adversarial."""
    features = np.asarray(features, dtype=np.float64)
    d = features[:, None, :] - fit.means[None, :, :]  # (N, K, D)
    return np.einsum("nkd,de,nke->nk", d, fit.precision, d).min(1)
