"""What an attack runs on: a target is any `nn.Module` that returns logits (N, K), as in torchattacks.

- the sanitized classifier itself (the oblivious attacker);
- `SumLogits`, the summed logits of the unsanitized and the sanitized model;
- `DetectorSystem(classifier, detector, threshold)`, the paper's Fig. 9 system
  with any detector: `forward` gives the classifier's logits, `score` the
  detector's differentiable score for an adaptive attacker's hinge, and
  `accepts` the detector's own decision, computed exactly as the detect stage
  computes it (`cull.detection`, `cull.detectors`).

A detector (`KLDetector`, `SqueezeDetector`, `MahalanobisDetector`) is a
module: ``detector(x, logits=None)`` is its differentiable (N,) float64 score
(``logits``, the watched models' logits on x when the caller has them, saves
a forward pass), ``detector.exact(x)`` its score as the detect stage computes
it. It names the models whose class it watches (``watched``): an attacker that
wants to be accepted drives each of them to the target, as the KL's two models
must agree.
Feature squeezing is not differentiable (rounding, a median filter); its
gradient is taken by BPDA (Athalye, Carlini and Wagner, ICML 2018,
https://arxiv.org/abs/1802.00420): the squeeze in the forward pass, the
identity in the backward pass.
"""
from __future__ import annotations

import numpy as np
import torch

from cull.attacks._checks import check_model
from cull.detection import DIVERGENCES, LN2, divergence
from cull.detectors import ClassGaussians, bit_depth, feature_squeezing_score, mahalanobis_score, median_smooth
from cull.detectors.mahalanobis import penultimate, penultimate_features


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
TORCH_DIVERGENCES = {
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


# ---------------------------------------------------------------- targets


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


class KLDetector(torch.nn.Module):
    """The paper's detector: a divergence between the unsanitized and the sanitized model's softmax (§2.4)."""

    def __init__(self, unsanitized: torch.nn.Module, sanitized: torch.nn.Module, kind: str = "kl"):
        super().__init__()
        if kind not in DIVERGENCES:
            raise ValueError(f"divergence: expected one of {', '.join(DIVERGENCES)}, got {kind!r}")
        for model in (unsanitized, sanitized):
            check_model(model)
        self.unsanitized, self.sanitized, self.kind = unsanitized, sanitized, kind
        self.training = False

    @property
    def watched(self) -> tuple[torch.nn.Module, ...]:
        return self.unsanitized, self.sanitized

    def forward(self, x, logits=None):  # (N,) float64, differentiable; logits: the watched models' on x, if at hand
        z_u, z_s = logits if logits is not None else (self.unsanitized(x), self.sanitized(x))
        return torch_divergence(z_u, z_s, self.kind)

    @torch.no_grad()
    def exact(self, x) -> np.ndarray:
        return divergence(self.unsanitized(x), self.sanitized(x), kind=self.kind)

    @staticmethod
    def hinge(score: torch.Tensor, threshold: float, margin: float) -> torch.Tensor:
        """max(0, D - tau + m), in nats: what the adaptive attacker's loss adds (`cull.attacks.adaptive`)."""
        return (score - threshold + margin).clamp_min(0.0)


def _straight_through(x: torch.Tensor, squeezed: torch.Tensor) -> torch.Tensor:
    """`squeezed` in the forward pass, the identity's gradient in the backward pass (BPDA)."""
    return x + (squeezed - x).detach()


class SqueezeDetector(torch.nn.Module):
    """Feature squeezing (`cull.detectors.squeeze`) on one model; differentiable by BPDA."""

    def __init__(self, model: torch.nn.Module, *, bits: int = 1, median: int = 2):
        super().__init__()
        check_model(model)
        self.model, self.bits, self.median = model, bits, median
        self.training = False

    @property
    def watched(self) -> tuple[torch.nn.Module, ...]:
        return (self.model,)

    def forward(self, x, logits=None):  # (N,) float64: max over squeezers of the L1 change of the softmax
        p = torch.softmax((logits[0] if logits is not None else self.model(x)).double(), dim=1)
        l1 = [(p - torch.softmax(self.model(_straight_through(x, squeeze(x.detach()))).double(), dim=1)).abs().sum(1)
              for squeeze in (lambda v: bit_depth(v, self.bits), lambda v: median_smooth(v, self.median))]
        return torch.stack(l1).amax(0)

    @torch.no_grad()
    def exact(self, x) -> np.ndarray:
        return feature_squeezing_score(self.model, x, bits=self.bits, median=self.median, device=x.device)

    hinge = staticmethod(KLDetector.hinge)  # max(0, D - tau + m); D is an L1 distance in [0, 2]


class MahalanobisDetector(torch.nn.Module):
    """The Mahalanobis detector (`cull.detectors.mahalanobis`) on one model with fitted class Gaussians."""

    def __init__(self, model: torch.nn.Module, gaussians: ClassGaussians):
        super().__init__()
        check_model(model)
        self.model, self.gaussians = model, gaussians
        self.training = False

    @property
    def watched(self) -> tuple[torch.nn.Module, ...]:
        return (self.model,)

    def forward(self, x, logits=None):  # (N,) float64, differentiable: min over classes of the squared distance
        f = penultimate(self.model, x).double()
        means = torch.as_tensor(self.gaussians.means, dtype=torch.float64, device=f.device)
        precision = torch.as_tensor(self.gaussians.precision, dtype=torch.float64, device=f.device)
        d = f[:, None, :] - means[None]  # (N, K, D)
        return torch.einsum("nkd,de,nke->nk", d, precision, d).amin(1)

    @torch.no_grad()
    def exact(self, x) -> np.ndarray:
        return mahalanobis_score(self.gaussians, penultimate_features(self.model, x, device=x.device))

    @staticmethod
    def hinge(score: torch.Tensor, threshold: float, margin: float) -> torch.Tensor:
        """max(0, sqrt(D) - sqrt(tau) + m): on the distance, not its square, which runs to the hundreds.

        The same acceptance (D <= tau iff sqrt(D) <= sqrt(tau)), but a hinge on the
        scale of the logit margins it is summed with, so neither swamps the other
        in the loss (Tramèr et al., 2020, https://arxiv.org/abs/2002.08347, §4: balance the loss terms).
        """
        return (score.clamp_min(0.0).sqrt() - threshold ** 0.5 + margin).clamp_min(0.0)


class DetectorSystem(torch.nn.Module):
    """The detector + classifier system of the paper's Fig. 9, as an attack target.

    ``forward(x)`` is the classifier's logits (N, K); ``score(x)`` the
    detector's differentiable (N,) float64 score; ``accepts(x)`` the detector's
    own decision, exact score <= threshold, as (N,) bool with the (N,) float64
    scores. The system outputs the classifier's class where it accepts.
    """

    def __init__(self, classifier: torch.nn.Module, detector: torch.nn.Module, threshold: float):
        super().__init__()
        check_model(classifier)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold) \
                or threshold < 0:
            raise ValueError(f"threshold: expected a finite score >= 0, got {threshold!r}")
        self.classifier, self.detector, self.threshold = classifier, detector, float(threshold)
        self.training = False

    @property
    def watched(self) -> tuple[torch.nn.Module, ...]:
        """The models the attacker drives to the target: the detector's, the classifier among them."""
        watched = tuple(self.detector.watched)
        return watched if any(m is self.classifier for m in watched) else (*watched, self.classifier)

    def forward(self, x):
        return self.classifier(x)

    def score(self, x) -> torch.Tensor:
        return self.detector(x)

    def accepts(self, x) -> tuple[torch.Tensor, torch.Tensor]:
        scores = torch.as_tensor(np.asarray(self.detector.exact(x), dtype=np.float64), device=x.device)
        return scores <= self.threshold, scores


def threat_target(threat, system: DetectorSystem) -> torch.nn.Module:
    """The module that threat model `threat` (`cull.params.ThreatModel`) attacks, given the system it is scored on:
    the classifier alone, the summed logits of the system's divergence detector's two models, or the system."""
    if threat.target == "classifier":
        return system.classifier
    if threat.target == "system":
        return system
    if threat.target == "sum":
        if not isinstance(system.detector, KLDetector):
            raise ValueError(f"threat_models.{threat.name}: summed logits need a divergence detector's two models, "
                             f"got {type(system.detector).__name__}")
        return SumLogits(system.detector.unsanitized, system.detector.sanitized)
    raise ValueError(f"threat_models.{threat.name}: unknown target {threat.target!r}")


def detector_systems(names, *, unsanitized: torch.nn.Module, sanitized: torch.nn.Module, detect: dict,
                     detect_path, gaussians: ClassGaussians | None = None) -> dict[str, DetectorSystem]:
    """Detector name -> the system of the sanitized classifier and that detector at its calibrated tau.

    `detect` is the detect stage's metrics (`cull.detection.read_detect_metrics` reads each tau and the
    squeezers' settings from it); its headline divergence is the KL system and comes first, whatever
    `names` says; "mahalanobis" needs the `gaussians` of the same stage's .npz.
    """
    from cull.detection import read_detect_metrics

    kind, tau, _ = read_detect_metrics(detect, detect_path)
    systems = {kind: DetectorSystem(sanitized, KLDetector(unsanitized, sanitized, kind), tau)}
    for name in names:
        if name == kind:
            continue
        if name in DIVERGENCES:
            raise ValueError(f"threat_models: {name!r} is not the detect stage's divergence ({kind}); "
                             "the adaptive attacker runs on that one")
        _, tau, row = read_detect_metrics(detect, detect_path, name)
        if name == "squeeze":
            detector = SqueezeDetector(sanitized, **row.get("settings", {}))
        elif name == "mahalanobis":
            if gaussians is None:
                raise ValueError("threat_models: mahalanobis needs the class Gaussians of the detect stage's .npz")
            detector = MahalanobisDetector(sanitized, gaussians)
        else:
            raise ValueError(f"threat_models: unknown detector {name!r}")
        systems[name] = DetectorSystem(sanitized, detector, tau)
    return systems
