"""Feature squeezing: Xu, Evans and Qi, 'Feature Squeezing: Detecting Adversarial Examples in Deep Neural
Networks', NDSS 2018, https://arxiv.org/abs/1704.01155.

The score of an image is the largest L1 distance between the model's softmax on
the image and on each squeezed copy of it. For MNIST the paper's joint detector
uses two squeezers: 1-bit depth reduction and 2x2 median smoothing.
"""
from __future__ import annotations

import numpy as np
import scipy.ndimage
import torch

from cull.models import to_float

BATCH = 1000  # images per forward pass


def bit_depth(x: torch.Tensor, bits: int = 1) -> torch.Tensor:
    """Reduce [0, 1] pixels to 2**bits levels: round(x * (2**bits - 1)) / (2**bits - 1).

    1 bit maps x < 0.5 to 0 and x > 0.5 to 1 (0.5 itself rounds half to even, to 0).
    """
    if bits < 1:
        raise ValueError(f"bit_depth: expected bits >= 1, got {bits}")
    levels = 2**bits - 1
    return torch.round(x * levels) / levels


def median_smooth(x: torch.Tensor, size: int = 2) -> torch.Tensor:
    """Median filter over size x size windows of each channel, reflecting at the borders.

    As Xu et al.'s code (scipy.ndimage.median_filter, mode 'reflect'): for an
    even size the window of pixel (i, j) covers rows i - size/2 .. i + size/2 - 1
    and likewise columns, and its median is the upper of the two middle values.
    """
    if size < 1:
        raise ValueError(f"median_smooth: expected size >= 1, got {size}")
    out = scipy.ndimage.median_filter(x.detach().cpu().numpy(), size=(1, 1, size, size), mode="reflect")
    return torch.as_tensor(out, dtype=x.dtype, device=x.device)


@torch.no_grad()
def feature_squeezing_score(model: torch.nn.Module, images, *, bits: int = 1, median: int = 2,
                            device="cpu", batch: int = BATCH) -> np.ndarray:
    """Per image, max over the squeezers of || softmax(model(x)) - softmax(model(squeeze(x))) ||_1.

    Arguments:
        model: classifier returning logits, in eval mode.
        images: (N, C, H, W) uint8, or floating point in [0, 1] (adversarial examples); array or tensor.
        bits: the bit-depth squeezer's bits; median: the median squeezer's window side.

    Returns:
        (N,) float64 scores in [0, 2]; higher = more likely adversarial.
    """
    scores = []
    for start in range(0, len(images), batch):
        chunk = torch.as_tensor(images[start:start + batch]).to(device)
        x = to_float(chunk) if chunk.dtype == torch.uint8 else chunk.float()
        p = torch.softmax(model(x).double(), dim=1)
        l1 = [(p - torch.softmax(model(s(x)).double(), dim=1)).abs().sum(1)
              for s in (lambda v: bit_depth(v, bits), lambda v: median_smooth(v, median))]
        scores.append(torch.stack(l1).amax(0).cpu().numpy())
    return np.concatenate(scores) if scores else np.zeros(0)
