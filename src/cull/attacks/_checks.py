"""Checks shared by the attacks, run once at each public entry."""
from __future__ import annotations

import numpy as np
import torch


def check_model(model: torch.nn.Module) -> None:
    if model.training:
        raise ValueError("model is in training mode (dropout would make the attack random); call model.eval() first")


def check_batch(images: torch.Tensor, labels: torch.Tensor, name: str = "labels") -> None:
    """images (N, C, H, W) floating in [0, 1]; labels (N,) integer, non-negative."""
    if not isinstance(images, torch.Tensor) or not isinstance(labels, torch.Tensor):
        raise TypeError(
            f"images and {name} must be torch tensors, got {type(images).__name__} and {type(labels).__name__}"
        )
    if images.ndim != 4:
        raise ValueError(f"images: expected shape (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images: expected floating point in [0, 1], got dtype {images.dtype}")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{name}: expected shape ({len(images)},), got {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"{name}: expected integer classes, got dtype {labels.dtype}")
    if len(images) == 0:
        raise ValueError("images: expected at least one image, got an empty batch")
    low, high = images.min().item(), images.max().item()
    if not (0.0 <= low and high <= 1.0):  # also false for NaN
        raise ValueError(f"images: expected pixel values in [0, 1], found range [{low}, {high}]")
    if labels.min().item() < 0:
        raise ValueError(f"{name}: expected classes >= 0, found {labels.min().item()}")


def check_classes(labels: torch.Tensor, num_classes: int, name: str = "labels") -> None:
    if num_classes < 2:
        raise ValueError(f"model: expected logits for at least 2 classes, got {num_classes}")
    if labels.max().item() >= num_classes:
        raise ValueError(f"{name}: model has {num_classes} classes, found class {labels.max().item()}")


def check_test_set(test_x: np.ndarray, test_y: np.ndarray) -> np.ndarray:
    """A stage's test set: (N, C, H, W) uint8 images and (N,) labels; returns the labels as int64."""
    test_y = np.asarray(test_y, dtype=np.int64)
    if test_x.ndim != 4 or test_x.dtype != np.uint8 or len(test_x) != len(test_y):
        raise ValueError(
            "test set: expected (N, C, H, W) uint8 images and (N,) labels, "
            f"got {test_x.shape} {test_x.dtype} and {test_y.shape}"
        )
    return test_y
