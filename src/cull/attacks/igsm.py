"""Iterative Gradient Sign Method (IGSM, also called BIM), untargeted, L-inf."""
from __future__ import annotations

from collections.abc import Sequence

import torch

from cull.attacks._checks import check_batch, check_classes, check_model


def igsm(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    eps: float = 0.3,
    alpha: float = 0.02,
    iterations: Sequence[int] = (5, 10, 15),
) -> dict[int, torch.Tensor]:
    """IGSM from 'Adversarial examples in the physical world' (Kurakin, Goodfellow
    and Bengio, 2016), https://arxiv.org/abs/1607.02533.

    Distance measure: L-inf. Untargeted. Each step moves every pixel by `alpha`
    along the sign of the input gradient of the cross-entropy loss, then clips
    to the eps-ball around the clean image and to [0, 1]:
    ``x_{k+1} = clip_[0,1](clip_{x,eps}(x_k + alpha * sign(grad_x CE(model(x_k), y))))``.

    Arguments:
        model (nn.Module): classifier returning logits (N, K). The caller puts it
            in eval mode; a model in training mode is an error. Its parameters and
            their `.grad` are never touched (input gradients only).
        images (torch.Tensor): (N, C, H, W) floating point in [0, 1].
        labels (torch.Tensor): (N,) true classes.
        eps (float): L-inf budget in [0, 1] pixel units. (Default: 0.3)
        alpha (float): step size per iteration. (Default: 0.02; 15 x 0.02 = 0.3,
            so the 15-step attack can just reach eps, and 5 or 10 steps cannot.)
        iterations (sequence of int): step counts to return. (Default: (5, 10, 15))

    Returns:
        dict {k: (N, C, H, W) adversarial images} for each k in `iterations`,
        same dtype and device as `images`.

    Examples::
        >>> adv = igsm(model.eval(), images, labels, eps=0.3, alpha=0.02, iterations=(5, 10, 15))
        >>> acc = (model(adv[15]).argmax(1) == labels).float().mean()

    Departures from the paper:
        * Kurakin et al. use alpha = 1/255 and min(eps*255 + 4, 1.25*eps*255)
          steps; we follow Less is More (§3.1): a fixed alpha and 5, 10 and 15 steps.
        * Because alpha is fixed, the k-step attack is the k-th iterate of a longer
          run, so the attack runs once to max(iterations) and snapshots each k.
        * The gradient is taken in a numerically stable but equivalent form:
          for softmax p, grad_logits CE = p - e_y = (1 - p_y) (q - e_y), where q is
          the softmax over the classes other than y. The positive factor
          (1 - p_y) does not change the sign, and dropping it keeps the gradient
          from underflowing to zero in float32 on very confident examples (a
          saturated softmax would otherwise stop the attack: gradient masking).
    """
    check_model(model)
    check_batch(images, labels)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"eps: expected a value in [0, 1], got {eps}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    ks = sorted(set(int(k) for k in iterations))
    if not ks or ks[0] < 1:
        raise ValueError(f"iterations: expected positive step counts, got {list(iterations)}")

    x = images.detach()
    y = labels.to(x.device)
    low, high = (x - eps).clamp(min=0.0), (x + eps).clamp(max=1.0)  # eps-ball within [0, 1]
    adv = x.clone()
    out = {}
    for step in range(1, ks[-1] + 1):
        adv.requires_grad_(True)
        logits = model(adv)  # (N, K)
        if step == 1:
            check_classes(y, logits.shape[1])
        direction = _ce_direction(logits.detach(), y)  # (N, K), same sign as grad of CE
        (grad,) = torch.autograd.grad(logits, adv, grad_outputs=direction)
        adv = torch.minimum(torch.maximum(adv.detach() + alpha * grad.sign(), low), high)
        if step in ks:
            out[step] = adv.clone()
    return out


def _ce_direction(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(q - e_y): the cross-entropy gradient w.r.t. the logits divided by (1 - p_y) > 0."""
    onehot = torch.nn.functional.one_hot(labels, logits.shape[1]).bool()
    q = torch.softmax(logits.double().masked_fill(onehot, float("-inf")), dim=1)
    return (q - onehot.double()).to(logits.dtype)
