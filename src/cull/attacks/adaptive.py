"""Adaptive C&W L2 attacks on the detector + classifier system of the paper's Fig. 9 (beyond the paper).

The paper (§4) evaluates its KL detector only against an attacker who does not
know it, and leaves the adaptive case to future work. Here the attacker knows
both models, the divergence and its threshold.

Notation: N examples, K classes. U and S are the unsanitized and the sanitized
model, Z_U, Z_S their logits (N, K), P_U, P_S their softmax outputs. D(x) is the
detector's divergence, by default D_KL(P_U(x) || P_S(x)) (`cull.detection`), and
tau its calibrated threshold. The Fig. 9 system accepts x iff D(x) <= tau and
then outputs argmax Z_S(x).

Two attackers, each a function on one batch:

* `adaptive_l2`: C&W L2 on U, S and D together: both models predict the target
  with margin >= kappa, and a hinge keeps D below tau.
* `sum_l2`: plain `cw_l2` on the summed logits Z_U + Z_S (`SumLogits`). A high
  kappa saturates both models on the target, so D collapses; cheaper (no
  divergence in the loop) but blind to tau.

One rule scores both (`system_outcome`): an example fools the system iff the
attack met its own goal on it, the detector accepts it (D <= tau, computed as
`cull.detection.divergence` computes it, in float64) and S outputs the target.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch

from cull.attacks._checks import check_classes, check_model
from cull.attacks.cw import check_kappa, check_search, check_targets, cw_l2, l2_search, target_margin
from cull.detection import DIVERGENCES, LN2, accept_mask, divergence


class AdaptiveResult(NamedTuple):
    images: torch.Tensor  # (N, C, H, W) the images presented: smallest-L2 adversarial where found, else CLEAN
    found: torch.Tensor  # (N,) bool: the attack met its own goal (see each attack)
    success: torch.Tensor  # (N,) bool: fools the system (found, accepted, S outputs the target)
    l2: torch.Tensor  # (N,) L2 distance to the clean image; NaN where found is False
    divergence: torch.Tensor  # (N,) float64 detector score D of `images`, as cull.detection computes it
    accepted: torch.Tensor  # (N,) bool: D <= tau
    sanitized_pred: torch.Tensor  # (N,) argmax Z_S: the system's class when it accepts
    unsanitized_pred: torch.Tensor  # (N,) argmax Z_U (recorded; the system never outputs it)


# ---------------------------------------------------------------- divergences with gradients


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """(A,) D_KL(P || Q) from (A, K) float64 log-probabilities, as cull.detection._kl (0 log 0 = 0)."""
    p = log_p.exp()
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return terms.sum(1).clamp_min(0.0)


def _js(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    log_m = torch.logaddexp(log_p, log_q) - LN2
    return (0.5 * _kl(log_p, log_m) + 0.5 * _kl(log_q, log_m)).clamp(0.0, LN2)


# kind -> (A,) float64 score from (log P_U, log P_S); the same kinds and directions as cull.detection.DIVERGENCES
TORCH_DIVERGENCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "kl": lambda log_u, log_s: _kl(log_u, log_s),
    "reverse": lambda log_u, log_s: _kl(log_s, log_u),
    "js": _js,
}
assert TORCH_DIVERGENCES.keys() == DIVERGENCES.keys()


def torch_divergence(unsanitized_logits: torch.Tensor, sanitized_logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Differentiable (A,) float64 divergence of kind `kind` from logits (A, K) of U and S."""
    log_u = unsanitized_logits.double().log_softmax(1)
    log_s = sanitized_logits.double().log_softmax(1)
    return TORCH_DIVERGENCES[kind](log_u, log_s)


def _check_detector(threshold: float, kind: str, kl_margin: float) -> float:
    if kind not in DIVERGENCES:
        raise ValueError(f"divergence: expected one of {', '.join(DIVERGENCES)}, got {kind!r}")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not math.isfinite(threshold) \
            or threshold < 0:
        raise ValueError(f"threshold: expected a finite divergence >= 0, got {threshold!r}")
    if not kl_margin >= 0:
        raise ValueError(f"kl_margin: expected >= 0, got {kl_margin}")
    return float(threshold)


# ---------------------------------------------------------------- the success rule


def system_outcome(
    unsanitized_logits: torch.Tensor,
    sanitized_logits: torch.Tensor,
    targets: torch.Tensor,
    found: torch.Tensor,
    *,
    threshold: float,
    divergence_kind: str = "kl",
) -> dict[str, torch.Tensor]:
    """What the Fig. 9 system makes of N presented images, and whether each fools it.

    Parameters
    ----------
    unsanitized_logits, sanitized_logits : (N, K) logits of U and S on the images.
    targets : (N,) int target classes.
    found : (N,) bool, the attack's own success flag (an image it did not find
        is the clean image and fools nothing).
    threshold : float, tau; the detector accepts iff D <= tau.
    divergence_kind : {"kl", "reverse", "js"}, default "kl", as in `cull.detection.divergence`.

    Returns
    -------
    dict of (N,) tensors on `targets`' device: ``divergence`` (float64, the
    detector's own computation), ``accepted``, ``sanitized_pred``,
    ``unsanitized_pred`` and ``success`` = found AND accepted AND
    sanitized_pred == target. Higher divergence = more likely rejected.
    """
    threshold = _check_detector(threshold, divergence_kind, 0.0)
    device = targets.device
    scores = divergence(unsanitized_logits, sanitized_logits, kind=divergence_kind)  # (N,) float64, numpy
    accepted = torch.from_numpy(accept_mask(scores, threshold=threshold)).to(device)
    san = sanitized_logits.argmax(1).to(device)
    return {
        "divergence": torch.from_numpy(np.asarray(scores)).to(device),
        "accepted": accepted,
        "sanitized_pred": san,
        "unsanitized_pred": unsanitized_logits.argmax(1).to(device),
        "success": found.to(device) & accepted & (san == targets),
    }


def _result(unsanitized, sanitized, x, images, found, targets, *, threshold, kind) -> AdaptiveResult:
    """Score the presented images (clean where not found) in one batch."""
    images = torch.where(found[:, None, None, None], images, x)
    with torch.no_grad():
        z_u, z_s = unsanitized(images), sanitized(images)
    out = system_outcome(z_u, z_s, targets, found, threshold=threshold, divergence_kind=kind)
    l2 = (images - x).flatten(1).norm(dim=1).masked_fill(~found, float("nan"))
    return AdaptiveResult(images, found, out["success"], l2, out["divergence"], out["accepted"],
                          out["sanitized_pred"], out["unsanitized_pred"])


def _hits(logits: torch.Tensor, margin: torch.Tensor, targets: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    return (margin >= kappa) & (logits.argmax(1) == targets)


def _num_classes(unsanitized, sanitized, x: torch.Tensor) -> int:
    with torch.no_grad():
        k_u, k_s = unsanitized(x[:1]).shape[1], sanitized(x[:1]).shape[1]
    if k_u != k_s:
        raise ValueError(f"models: the unsanitized model has {k_u} classes, the sanitized {k_s}; expected equal")
    return k_u


# ---------------------------------------------------------------- the attacks


def adaptive_l2(
    unsanitized: torch.nn.Module,
    sanitized: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    threshold: float,
    divergence_kind: str = "kl",
    kappa: float | torch.Tensor = 0.0,
    kl_margin: float = 1e-3,
    initial_c: float = 1e-3,
    steps: int = 1000,
    search_steps: int = 9,
    lr: float = 0.01,
    abort_early: bool = True,
    on_search_step: Callable[[int, torch.Tensor], None] | None = None,
) -> AdaptiveResult:
    """Adaptive C&W L2 against the detector + classifier system (paper Fig. 9).

    The attack of 'Towards Evaluating the Robustness of Neural Networks' (Carlini
    and Wagner, 2017, https://arxiv.org/abs/1608.04644) with the detector folded
    into the loss, as in 'Adversarial Examples Are Not Easily Detected' (Carlini
    and Wagner, 2017, https://arxiv.org/abs/1705.07263) and 'On Adaptive Attacks
    to Adversarial Example Defenses' (Tramèr et al., 2020,
    https://arxiv.org/abs/2002.08347).

    Distance measure: L2. Targeted. With x' = (tanh(w) + 1) / 2, Adam minimises
    over w, per example,
    ``||x' - x||^2 + c * (f(Z_U(x')) + f(Z_S(x')) + max(0, D(x') - tau + kl_margin))``
    with f(Z) = max(max_{i != t} Z_i - Z_t, -kappa) (the paper's f6 on each
    model) and D the detector's divergence in float64. c scales all three
    adversarial terms; the binary search over c, the restarts, the per-example
    Adam and the early abort are those of `cw_l2` (`cull.attacks.cw.l2_search`).
    An iterate meets the goal iff both U and S predict the target with margin
    >= kappa and D <= tau; the result is, per example, the smallest-L2 such
    iterate of any search step, checked once more in one batch.

    Arguments:
        unsanitized, sanitized (nn.Module): U and S, returning logits (N, K).
            The caller puts them in eval mode (training mode is an error); only
            input gradients are taken.
        images (torch.Tensor): (N, C, H, W) floating point in [0, 1].
        labels (torch.Tensor): (N,) true classes (only checked: target != label).
        targets (torch.Tensor): (N,) target classes.
        threshold (float): tau, the detector's threshold (accept iff D <= tau).
        divergence_kind (str): "kl" (D_KL(P_U || P_S), the paper's), "reverse"
            or "js", as the detector uses. (Default: "kl")
        kappa (float or torch.Tensor): confidence on both models, a float or a
            (N,) tensor, >= 0. (Default: 0.0)
        kl_margin (float): m >= 0, in the divergence's units (nats); the hinge
            aims at D <= tau - m so that float noise between batches does not
            push an accepted example over tau. (Default: 1e-3)
        initial_c (float): first c of the binary search. (Default: 1e-3)
        steps (int): Adam iterations per search step. (Default: 1000)
        search_steps (int): binary-search steps over c. (Default: 9)
        lr (float): Adam learning rate, in tanh space. (Default: 0.01)
        abort_early (bool): as in `cw_l2`. (Default: True)
        on_search_step (callable or None): on_search_step(step, found (N,) bool)
            after each search step, for progress bars. (Default: None)

    Returns:
        AdaptiveResult: the presented images (N, C, H, W), (N,) masks ``found``
        (the goal above) and ``success`` (fools the system; see
        `system_outcome`), ``l2`` (NaN where not found), the detector's float64
        ``divergence``, ``accepted`` and both models' classes. Examples never
        found come back as the CLEAN image: always check ``success``.

    Examples::
        >>> res = adaptive_l2(u.eval(), s.eval(), images, labels, targets, threshold=tau, kappa=5.0)
        >>> res.success.float().mean(), res.l2[res.success].mean()

    Departures from a plain C&W: two models and a hinge on D in one loss; the
    goal also needs U to predict the target (it keeps D small and is the
    attacker's stated aim), while `success` asks only what the system sees.
    """
    for model in (unsanitized, sanitized):
        check_model(model)
    check_targets(images, labels, targets)
    check_search(steps=steps, search_steps=search_steps, initial_c=initial_c, lr=lr)
    tau = _check_detector(threshold, divergence_kind, kl_margin)
    x = images.detach()
    kappa = check_kappa(kappa, len(x), x)
    targets = targets.to(x.device)
    num_classes = _num_classes(unsanitized, sanitized, x)
    check_classes(labels, num_classes)
    check_classes(targets, num_classes, "targets")
    to_divergence = TORCH_DIVERGENCES[divergence_kind]

    def objective(adv, targets, kappa):
        z_u, z_s = unsanitized(adv), sanitized(adv)  # (A, K) each
        m_u, m_s = target_margin(z_u, targets), target_margin(z_s, targets)
        d = to_divergence(z_u.double().log_softmax(1), z_s.double().log_softmax(1))  # (A,) float64
        hinge = (d - tau + kl_margin).clamp_min(0.0).to(adv.dtype)
        term = torch.maximum(-m_u, -kappa) + torch.maximum(-m_s, -kappa) + hinge
        return term, _hits(z_u, m_u, targets, kappa) & _hits(z_s, m_s, targets, kappa) & (d <= tau)

    best, best_l2sq = l2_search(
        objective, x, (targets, kappa), initial_c=initial_c, steps=steps, search_steps=search_steps,
        lr=lr, abort_early=abort_early, on_search_step=on_search_step,
    )
    with torch.no_grad():
        z_u, z_s = unsanitized(best), sanitized(best)
    d = torch.from_numpy(divergence(z_u, z_s, kind=divergence_kind)).to(x.device)  # the detector's own numbers
    found = torch.isfinite(best_l2sq) & _hits(z_u, target_margin(z_u, targets), targets, kappa) \
        & _hits(z_s, target_margin(z_s, targets), targets, kappa) & (d <= tau)
    return _result(unsanitized, sanitized, x, best, found, targets, threshold=tau, kind=divergence_kind)


class SumLogits(torch.nn.Module):
    """Z_U(x) + Z_S(x) (N, K): a classifier that is confident only where both models lean to one class.

    Built from two models in eval mode (checked). Only this wrapper's own
    `training` flag is set to False; the models' modes are left as they are.
    """

    def __init__(self, unsanitized: torch.nn.Module, sanitized: torch.nn.Module):
        super().__init__()
        for model in (unsanitized, sanitized):
            check_model(model)
        self.unsanitized, self.sanitized = unsanitized, sanitized
        self.training = False

    def forward(self, x):  # (N, C, H, W) in [0, 1] -> (N, K)
        return self.unsanitized(x) + self.sanitized(x)


def sum_l2(
    unsanitized: torch.nn.Module,
    sanitized: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    threshold: float,
    divergence_kind: str = "kl",
    kappa: float | torch.Tensor = 0.0,
    initial_c: float = 1e-3,
    steps: int = 1000,
    search_steps: int = 9,
    lr: float = 0.01,
    abort_early: bool = True,
    on_search_step: Callable[[int, torch.Tensor], None] | None = None,
) -> AdaptiveResult:
    """C&W L2 on the summed logits Z_U + Z_S, scored against the detector + classifier system.

    The cheaper adaptive attacker: plain `cw_l2` (Carlini and Wagner, 2017,
    https://arxiv.org/abs/1608.04644) on `SumLogits`. A target margin >= kappa
    on the sum needs both models to lean to the target; at a high kappa both
    saturate, P_U and P_S both approach the one-hot target and D collapses
    (cf. Carlini and Wagner, https://arxiv.org/abs/1705.07263, on attacking a
    detector through the classifier it watches; Tramèr et al.,
    https://arxiv.org/abs/2002.08347, on choosing the simplest loss that
    works). tau plays no part in the optimisation; it only scores the result.

    Arguments: as `adaptive_l2`, less `kl_margin`. ``found`` is `cw_l2`'s success
    on the sum (target margin of Z_U + Z_S >= kappa); ``success`` follows the same
    rule as `adaptive_l2` (`system_outcome`): found, accepted and S outputs the target.

    Returns:
        AdaptiveResult, as `adaptive_l2`.

    Examples::
        >>> res = sum_l2(u.eval(), s.eval(), images, labels, targets, threshold=tau, kappa=20.0)
        >>> res.success.float().mean()
    """
    tau = _check_detector(threshold, divergence_kind, 0.0)
    model = SumLogits(unsanitized, sanitized)
    check_targets(images, labels, targets)
    _num_classes(unsanitized, sanitized, images)  # before the sum would broadcast two class counts
    res = cw_l2(
        model, images, labels, targets, kappa=kappa, initial_c=initial_c, steps=steps,
        search_steps=search_steps, lr=lr, abort_early=abort_early, on_search_step=on_search_step,
    )
    x = images.detach()
    return _result(unsanitized, sanitized, x, res.images, res.success, targets.to(x.device),
                   threshold=tau, kind=divergence_kind)


# variant name -> attack; `adaptive_l2` alone takes kl_margin
ATTACKS = {"adaptive": adaptive_l2, "sum": sum_l2}
