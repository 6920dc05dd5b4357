"""The adaptive C&W L2 attack on a detector + classifier system (the paper's Fig. 9; beyond the paper).

The paper (§4) evaluates its KL detector only against an attacker who does not
know it, and leaves the adaptive case to future work. Here the attacker knows
the system: its classifier, its detector (the paper's KL or a baseline) and
the detector's threshold tau. Targets, detectors and the system are in
`cull.attacks.targets`; the attack has the call shape of every attack,
``adaptive_l2(system, images, labels, targets, **settings) -> AttackResult``.

* `adaptive_l2`: C&W L2 on the system: every model the detector watches
  predicts the target with margin >= kappa, and a hinge keeps the detector's
  score below tau (through BPDA where the detector is not differentiable).
* The cheaper attacker of the threat model ``sum-kl`` is plain `cw_l2` on the
  summed logits of the KL detector's two models (`SumLogits`): a high kappa
  saturates both on the target, so the KL collapses; blind to tau.

One rule scores every attack against a system (`evaluate`, `system_outcome`):
an example fools the system iff the attack met its own goal on it, the
detector accepts it (its exact score, as the detect stage computes it,
<= tau) and the classifier outputs the target.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import torch

from cull.attacks._checks import check_classes, check_model
from cull.attacks.cw import AttackResult, check_kappa, check_search, check_targets, cw_l2, l2_search, target_margin
from cull.attacks.targets import DetectorSystem
from cull.params import Adaptive


class SystemOutcome(NamedTuple):
    """An attack's result as the system sees it (`evaluate`)."""

    images: torch.Tensor  # (N, C, H, W) the images presented: smallest-L2 adversarial where found, else CLEAN
    found: torch.Tensor  # (N,) bool: the attack met its own goal (see each attack)
    success: torch.Tensor  # (N,) bool: fools the system (found, accepted, the classifier outputs the target)
    l2: torch.Tensor  # (N,) L2 distance to the clean image; NaN where found is False
    score: torch.Tensor  # (N,) float64 detector score of `images`, as the detect stage computes it
    accepted: torch.Tensor  # (N,) bool: score <= tau
    pred: torch.Tensor  # (N,) the classifier's class: the system's output where it accepts


def _check_system(system) -> DetectorSystem:
    if not isinstance(system, DetectorSystem):
        raise TypeError(f"system: expected a cull.attacks.targets.DetectorSystem, got {type(system).__name__}")
    for model in system.watched:
        check_model(model)
    return system


def system_outcome(system: DetectorSystem, images: torch.Tensor, targets: torch.Tensor,
                   found: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the system makes of N presented images, and whether each fools it.

    Returns (N,) tensors on `targets`' device: ``score`` (float64, the
    detector's own computation), ``accepted`` (score <= tau), ``pred`` (the
    classifier's class) and ``success`` = found AND accepted AND pred == target.
    """
    device = targets.device
    accepted, scores = system.accepts(images)
    with torch.no_grad():
        pred = system(images).argmax(1).to(device)
    accepted = accepted.to(device)
    return {"score": scores.to(device), "accepted": accepted, "pred": pred,
            "success": found.to(device) & accepted & (pred == targets)}


def evaluate(system: DetectorSystem, result: AttackResult, targets: torch.Tensor) -> SystemOutcome:
    """An attack's `result` on any target, scored against `system` in one batch: ``found`` is the
    attack's own success, ``success`` whether it fools the system (`system_outcome`)."""
    out = system_outcome(system, result.images, targets, result.success)
    return SystemOutcome(result.images, result.success, out["success"], result.l2, out["score"], out["accepted"],
                         out["pred"])


def _hits(logits: torch.Tensor, margin: torch.Tensor, targets: torch.Tensor, kappa: torch.Tensor) -> torch.Tensor:
    return (margin >= kappa) & (logits.argmax(1) == targets)


def _num_classes(models, x: torch.Tensor) -> int:
    with torch.no_grad():
        counts = [m(x[:1]).shape[1] for m in models]
    if len(set(counts)) != 1:
        raise ValueError(f"models: the watched models have {counts} classes; expected equal")
    return counts[0]


def adaptive_l2(
    system: DetectorSystem,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    kappa: float | torch.Tensor = 0.0,
    margin: float = 1e-3,
    initial_c: float = 1e-3,
    steps: int = 1000,
    search_steps: int = 9,
    lr: float = 0.01,
    abort_early: bool = True,
    on_search_step: Callable[[int, torch.Tensor], None] | None = None,
) -> AttackResult:
    """Adaptive C&W L2 against a detector + classifier system (paper Fig. 9).

    The attack of 'Towards Evaluating the Robustness of Neural Networks' (Carlini
    and Wagner, 2017, https://arxiv.org/abs/1608.04644) with the detector folded
    into the loss, as in 'Adversarial Examples Are Not Easily Detected' (Carlini
    and Wagner, 2017, https://arxiv.org/abs/1705.07263) and 'On Adaptive Attacks
    to Adversarial Example Defenses' (Tramèr et al., 2020,
    https://arxiv.org/abs/2002.08347).

    Distance measure: L2. Targeted. With x' = (tanh(w) + 1) / 2, Adam minimises
    over w, per example,
    ``||x' - x||^2 + c * (sum_m f(Z_m(x')) + h(D(x')))``
    over the models m the system watches (`DetectorSystem.watched`: for the KL,
    the unsanitized and the sanitized model; for a baseline, the classifier),
    with f(Z) = max(max_{i != t} Z_i - Z_t, -kappa) (the paper's f6), D the
    detector's differentiable score in float64 (BPDA for feature squeezing) and
    h the detector's hinge, max(0, D - tau + margin) (Mahalanobis: on the
    distance, max(0, sqrt(D) - sqrt(tau) + margin); `cull.attacks.targets`).
    The binary search over c, the per-example Adam and the early abort are those
    of `cw_l2` (`cull.attacks.cw.l2_search`). An iterate meets the goal iff every
    watched model predicts the target with margin >= kappa and D <= tau; the
    result is, per example, the smallest-L2 such iterate of any search step,
    checked once more in one batch with the detector's exact score.

    Arguments:
        system (DetectorSystem): classifier, detector and tau. The models are
            in eval mode (training mode is an error); only input gradients are taken.
        images (torch.Tensor): (N, C, H, W) floating point in [0, 1].
        labels (torch.Tensor): (N,) true classes (only checked: target != label).
        targets (torch.Tensor): (N,) target classes.
        kappa (float or torch.Tensor): confidence on every watched model, a
            float or a (N,) tensor, >= 0. (Default: 0.0)
        margin (float): m >= 0, in the detector's score units; the hinge aims at
            D <= tau - m so that float noise between batches does not push an
            accepted example over tau. (Default: 1e-3)
        initial_c, steps, search_steps, lr, abort_early: as in `cw_l2`.
        on_search_step (callable or None): on_search_step(step, found (N,) bool)
            after each search step, for progress bars. (Default: None)

    Returns:
        AttackResult(images, success, l2): the adversarial images (N, C, H, W),
        ``success`` (N,) the goal above, checked with the detector's exact
        score, and ``l2`` (NaN where not met). Examples that never met it come
        back as the CLEAN image: always check ``success``. `evaluate` scores
        the result against the system (accepted, the classifier's class).

    Examples::
        >>> system = DetectorSystem(s, KLDetector(u, s), tau)
        >>> res = adaptive_l2(system, images, labels, targets, kappa=5.0)
        >>> res.success.float().mean(), res.l2[res.success].mean()
    """
    system = _check_system(system)
    check_targets(images, labels, targets)
    check_search(steps=steps, search_steps=search_steps, initial_c=initial_c, lr=lr)
    if not margin >= 0:
        raise ValueError(f"margin: expected >= 0, got {margin}")
    tau, watched = system.threshold, system.watched
    x = images.detach()
    kappa = check_kappa(kappa, len(x), x)
    targets = targets.to(x.device)
    num_classes = _num_classes(watched, x)
    check_classes(labels, num_classes)
    check_classes(targets, num_classes, "targets")
    n_detector = len(system.detector.watched)

    def objective(adv, targets, kappa):
        logits = [m(adv) for m in watched]  # (A, K) each
        margins = [target_margin(z, targets) for z in logits]
        d = system.detector(adv, logits[:n_detector])  # (A,) float64
        hinge = system.detector.hinge(d, tau, margin).to(adv.dtype)
        term = sum(torch.maximum(-m, -kappa) for m in margins) + hinge
        ok = d <= tau
        for z, m in zip(logits, margins):
            ok = ok & _hits(z, m, targets, kappa)
        return term, ok

    best, best_l2sq = l2_search(
        objective, x, (targets, kappa), initial_c=initial_c, steps=steps, search_steps=search_steps,
        lr=lr, abort_early=abort_early, on_search_step=on_search_step,
    )
    found = torch.isfinite(best_l2sq) & system.accepts(best)[0].to(x.device)  # the detector's own numbers
    with torch.no_grad():
        for model in watched:
            z = model(best)
            found &= _hits(z, target_margin(z, targets), targets, kappa)
    best = torch.where(found[:, None, None, None], best, x)
    return AttackResult(best, found, (best - x).flatten(1).norm(dim=1).masked_fill(~found, float("nan")))


@dataclasses.dataclass(frozen=True)
class AdaptiveCW(Adaptive):
    """Params section `adaptive` (`cull.params.Adaptive`), callable on a target: on a `DetectorSystem`
    the adaptive C&W with its detector's hinge (`adaptive_l2`); on any other module (the summed logits
    of threat model sum-kl) plain `cw_l2` with these settings, float32, every search step."""

    @classmethod
    def of(cls, section: Adaptive) -> AdaptiveCW:
        return cls(**dataclasses.asdict(section))

    def __call__(self, target, images, labels, targets, *, kappa=0.0, on_search_step=None) -> AttackResult:
        search = {"kappa": kappa, "initial_c": self.initial_c, "steps": self.steps,
                  "search_steps": self.search_steps, "lr": self.lr, "on_search_step": on_search_step}
        if isinstance(target, DetectorSystem):
            return adaptive_l2(target, images, labels, targets, margin=self.margin, **search)
        return cw_l2(target, images, labels, targets, **search)
