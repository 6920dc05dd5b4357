"""Carlini & Wagner L2 attack, targeted, with the binary search over c.

`l2_search` (the binary search and per-example Adam) and the checks are shared
with the adaptive attacks of `cull.attacks.adaptive`.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F

from cull.attacks._checks import check_batch, check_classes, check_model
from cull.params import Cw

BOX_SHRINK = 0.999999  # Carlini's l2_attack.py: arctanh((2x - 1) * this) is finite at x = 0 or 1
ABORT_FACTOR = 0.9999  # early abort when the loss is above this times the loss at the last check
ABORT_CHECKS = 10  # early-abort checks per binary-search step (every steps // 10 iterations)
NO_UPPER = 1e10  # the original's "no successful c yet" upper bound ...
BOUNDED = 1e9  # ... and the level below which an upper bound counts as found
ADAM_BETAS = (0.9, 0.999)  # Adam defaults, as in the original (TensorFlow) and torch
ADAM_EPS = 1e-8
PRECISIONS = ("float32", "bfloat16")  # of the model's forward and backward inside the search

# objective(adv (A, C, H, W), *per_example rows) -> (adversarial term (A,), goal met (A,) bool); see l2_search
Objective = Callable[..., tuple[torch.Tensor, torch.Tensor]]
# goal(adv (B, C, H, W), *per_example rows) -> goal met (B,) bool, in float32; see l2_search
Goal = Callable[..., torch.Tensor]


class AttackResult(NamedTuple):
    """What every attack returns (one call shape: ``attack(target, images, labels, targets, **settings)``)."""

    images: torch.Tensor  # (N, C, H, W) smallest-L2 adversarial; the CLEAN image where success is False
    success: torch.Tensor  # (N,) bool: the attack met its own goal (C&W: target margin >= kappa) on `images`
    l2: torch.Tensor  # (N,) L2 distance to the clean image; NaN where success is False


CwResult = AttackResult  # the name before the adaptive attacks shared it


def target_margin(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Z_t - max_{i != t} Z_i for logits (N, K) and targets (N,) -> (N,).

    The target is masked with -inf before the max, so the result is right when
    every logit is negative (multiplying by a zeroed one-hot would put a 0 among
    the other classes and win the max).
    """
    onehot = F.one_hot(targets, logits.shape[1]).bool()
    other = logits.masked_fill(onehot, float("-inf")).amax(dim=1)
    return logits.gather(1, targets[:, None])[:, 0] - other


def cw_l2(
    model: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    targets: torch.Tensor,
    *,
    kappa: float | torch.Tensor = 0.0,
    initial_c: float = 1e-3,
    steps: int = 1000,
    search_steps: int = 9,
    lr: float = 0.01,
    abort_early: bool = True,
    precision: str = "float32",
    search_tolerance: float = 0.0,
    on_search_step: Callable[[int, torch.Tensor], None] | None = None,
) -> AttackResult:
    """CW L2 from 'Towards Evaluating the Robustness of Neural Networks' (Carlini
    and Wagner, 2017), https://arxiv.org/abs/1608.04644.

    Distance measure: L2. Targeted. With x' = (tanh(w) + 1) / 2 (always in
    [0, 1]), Adam minimises over w, for each example,
    ``||x' - x||^2 + c * max(max_{i != t} Z(x')_i - Z(x')_t, -kappa)``
    (the paper's f6 loss). A binary search over c runs per example: c starts at
    `initial_c` and is multiplied by 10 until the first success, then bisected.
    Each search step restarts from w = arctanh((2x - 1) * 0.999999) with fresh
    Adam state. The result is, per example, the smallest-L2 iterate seen in any
    search step whose target margin Z_t - max_{i != t} Z_i is >= kappa (and whose
    prediction is t).

    Arguments:
        model (nn.Module): classifier returning logits (N, K). The caller puts it
            in eval mode; a model in training mode is an error. Its parameters and
            their `.grad` are never touched (input gradients only).
        images (torch.Tensor): (N, C, H, W) floating point in [0, 1].
        labels (torch.Tensor): (N,) true classes (only checked: target != label).
        targets (torch.Tensor): (N,) target classes.
        kappa (float or torch.Tensor): confidence, a float or a (N,) tensor, >= 0,
            so several kappas run in one batch. (Default: 0.0)
        initial_c (float): first c of the binary search. (Default: 1e-3)
        steps (int): Adam iterations per search step. (Default: 1000)
        search_steps (int): binary-search steps over c. (Default: 9)
        lr (float): Adam learning rate, in tanh space. (Default: 0.01)
        abort_early (bool): stop an example's search step when its loss has not
            fallen by 0.01% since the last check, every steps // 10. (Default: True)
        precision (str): "float32", or "bfloat16" to run the model's forward and
            backward in the search under autocast (about 2x faster on a CPU with
            AVX512-BF16 and on a GPU). Whether an iterate meets the goal is then
            confirmed in float32 before it can become the best or count as found,
            and the returned success is always judged in float32. (Default: "float32")
        search_tolerance (float): in [0, 1). An example's binary search stops,
            skipping its remaining steps, once c is bracketed within this relative
            width: a success at `upper`, a failure at `lower` (or none yet) and
            upper - lower <= search_tolerance * upper. 0 runs every step, as the
            original does. (Default: 0.0)
        on_search_step (callable or None): called as on_search_step(step, found)
            after each search step (1-based), with found (N,) bool: an adversarial
            has been found so far. For progress bars. (Default: None)

    Returns:
        AttackResult(images, success, l2): adversarial images (N, C, H, W), a (N,)
        bool success mask and (N,) L2 distances. Examples never fooled have
        success False, l2 NaN and the CLEAN image in `images`: always check
        `success`.

    Examples::
        >>> res = cw_l2(model.eval(), images, labels, targets, kappa=0.0)
        >>> model(res.images[res.success]).argmax(1)  # == targets[res.success]

    Departures from the original code (Carlini's nn_robust_attacks/l2_attack.py):
        * Early abort and the binary search run per example (as with batch_size=1
          there); examples that abort leave the batch, which is where most of the
          speed comes from.
        * `l2` is the plain (not squared) L2 distance to the clean image x itself,
          not to its 0.999999-shrunk copy; the loss uses the squared distance to x.
        * Success is checked once more on the returned images in one batch, so a
          margin that a different batch composition would round below kappa is
          reported as a failure rather than as a success.
        * Adam is written out (the torch form of its update) so that state is per
          example and examples can leave the batch; only input gradients are taken.
        * With precision="bfloat16" the search follows bfloat16 gradients and
          margins; on the paper's MNIST set success is unchanged and the mean L2
          is within 1% of float32 (benchmarks/bench_cw.py prints both).
        * With search_tolerance > 0, settled examples leave the search early;
          at 0.3 on the paper's MNIST set this skips about a fifth of the work
          and raises the mean L2 by about 0.3% (benchmarks/bench_cw.py).
    """
    check_model(model)
    check_targets(images, labels, targets)
    check_search(steps=steps, search_steps=search_steps, initial_c=initial_c, lr=lr)
    check_precision(precision)
    if not 0 <= search_tolerance < 1:
        raise ValueError(f"search_tolerance: expected a value in [0, 1), got {search_tolerance}")
    x = images.detach()
    n, device = len(x), x.device
    kappa = check_kappa(kappa, n, x)
    targets = targets.to(device)
    with torch.no_grad():
        num_classes = model(x[:1]).shape[1]
    check_classes(labels, num_classes)
    check_classes(targets, num_classes, "targets")

    def objective(adv, targets, kappa):  # the paper's f6, per example (A,)
        logits = model(adv).float()  # (A, K)
        margin = target_margin(logits, targets)
        return torch.maximum(-margin, -kappa), (margin >= kappa) & (logits.argmax(1) == targets)

    def goal(adv, targets, kappa):
        with torch.autocast(device.type, enabled=False):  # float32
            logits = model(adv)
        return (target_margin(logits, targets) >= kappa) & (logits.argmax(1) == targets)

    # One autocast context around the whole search, so that the weights are cast once, not every iteration.
    with autocast(device, precision):
        best, best_l2sq = l2_search(
            objective, x, (targets, kappa), initial_c=initial_c, steps=steps, search_steps=search_steps,
            lr=lr, abort_early=abort_early, on_search_step=on_search_step,
            confirm=goal if precision != "float32" else None, search_tolerance=search_tolerance,
        )
    with torch.no_grad():
        logits = model(best)
    success = torch.isfinite(best_l2sq) & (target_margin(logits, targets) >= kappa) & (logits.argmax(1) == targets)
    best = torch.where(success[:, None, None, None], best, x)
    l2 = (best - x).flatten(1).norm(dim=1).masked_fill(~success, float("nan"))
    return AttackResult(best, success, l2)


@dataclasses.dataclass(frozen=True)
class CW(Cw):
    """Params section `cw` (`cull.params.Cw`: its fields, defaults and checks), callable on a target, as
    torchattacks' attacks are: ``CW.of(section)(target, images, labels, targets, kappa=...)`` is `cw_l2`
    with these settings on `target`, any module that returns logits."""

    @classmethod
    def of(cls, section: Cw) -> CW:
        return cls(**dataclasses.asdict(section))

    def __call__(self, target, images, labels, targets, *, kappa=0.0, on_search_step=None) -> AttackResult:
        return cw_l2(target, images, labels, targets, kappa=kappa, initial_c=self.initial_c, steps=self.steps,
                     search_steps=self.search_steps, lr=self.lr, precision=self.precision,
                     search_tolerance=self.search_tolerance, on_search_step=on_search_step)


def check_targets(images: torch.Tensor, labels: torch.Tensor, targets: torch.Tensor) -> None:
    """images (N, C, H, W) in [0, 1]; labels and targets (N,) classes; no target equal to its label."""
    check_batch(images, labels)
    check_batch(images, targets, name="targets")
    same = (targets.to(labels.device) == labels).nonzero()
    if len(same):
        i = int(same[0, 0])
        raise ValueError(
            f"targets: target equals the true label at index {i} (class {int(labels[i])}); "
            "a targeted attack needs another class"
        )


def check_search(*, steps: int, search_steps: int, initial_c: float, lr: float) -> None:
    if steps < 1 or search_steps < 1:
        raise ValueError(f"steps and search_steps: expected >= 1, got {steps} and {search_steps}")
    if not initial_c > 0 or not lr > 0:
        raise ValueError(f"initial_c and lr: expected > 0, got {initial_c} and {lr}")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")


def autocast(device: torch.device, precision: str):
    """The context the search runs in: bfloat16 autocast on the device, or nothing for float32.

    Autocast only lowers the model's convolutions and matmuls; the search's own
    arithmetic (tanh, the L2 term, Adam) stays float32.
    """
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16")


def check_kappa(kappa, n: int, x: torch.Tensor) -> torch.Tensor:
    """A float or (N,) tensor of confidences >= 0 -> (N,) tensor of x's dtype and device."""
    kappa = torch.as_tensor(kappa, dtype=x.dtype, device=x.device)
    if kappa.ndim == 0:
        kappa = kappa.expand(n)
    if kappa.shape != (n,):
        raise ValueError(f"kappa: expected a float or shape ({n},), got shape {tuple(kappa.shape)}")
    if not (kappa >= 0).all():
        raise ValueError(f"kappa: expected values >= 0, found {kappa.min().item()}")
    return kappa.contiguous()


def l2_search(
    objective: Objective,
    x: torch.Tensor,
    per_example: tuple[torch.Tensor, ...],
    *,
    initial_c: float,
    steps: int,
    search_steps: int,
    lr: float,
    abort_early: bool,
    on_search_step: Callable[[int, torch.Tensor], None] | None,
    confirm: Goal | None = None,
    search_tolerance: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The C&W optimisation shared by the L2 attacks: a per-example binary search over c.

    Minimises ``||x' - x||^2 + c * term(x')`` over w, x' = (tanh(w) + 1) / 2, with
    per-example Adam from w = arctanh((2x - 1) * BOX_SHRINK) at each search step.
    ``objective(adv, *per_example) -> (term, ok)`` maps the active examples'
    images (A, C, H, W) and their rows of `per_example` (each (A, ...)) to the
    adversarial term (A,) and a (A,) bool "this iterate meets the goal". c starts
    at `initial_c`, is multiplied by 10 until a first success, then bisected.
    With `confirm` (a float32 ``goal(adv, *per_example) -> ok``), the objective's
    ok is only a hint, as from a reduced-precision forward: the iterates that
    would become the best or mark their example found are checked again by it.
    An example's search ends early, its later steps skipped, once c is
    bracketed within `search_tolerance`: a success at `upper` and
    ``upper - lower <= search_tolerance * upper``; 0 runs every step.

    Returns (best, best_l2sq): (N, C, H, W), the smallest-L2 iterate with ok
    (the clean image where none was), and its squared L2 (N,), inf where none.
    Callers check their goal once more on `best` in one batch.
    """
    n, device = len(x), x.device
    w0 = torch.atanh((x * 2 - 1) * BOX_SHRINK)
    c = torch.full((n,), float(initial_c), dtype=torch.float64, device=device)
    lower = torch.zeros_like(c)
    upper = torch.full_like(c, NO_UPPER)
    best = x.clone()
    best_l2sq = torch.full((n,), float("inf"), dtype=x.dtype, device=device)
    searching = torch.ones(n, dtype=torch.bool, device=device)
    for step in range(1, search_steps + 1):
        if searching.any():
            found = _descend(
                objective, w0, x, per_example, c.to(x.dtype), searching.nonzero()[:, 0],
                steps=steps, lr=lr, abort_early=abort_early, best=best, best_l2sq=best_l2sq, confirm=confirm,
            )
            upper = torch.where(searching & found, torch.minimum(upper, c), upper)
            lower = torch.where(searching & ~found, torch.maximum(lower, c), lower)
            c = torch.where(upper < BOUNDED, (lower + upper) / 2, c * 10)
            searching &= ~((upper < BOUNDED) & (upper - lower <= search_tolerance * upper))
        if on_search_step is not None:
            on_search_step(step, torch.isfinite(best_l2sq))
    return best, best_l2sq


def _descend(
    objective, w0, x, per_example, c, idx, *, steps, lr, abort_early, best, best_l2sq, confirm
) -> torch.Tensor:
    """One binary-search step for the examples `idx` of N: Adam from w0 with constants c (N,).

    Updates `best` (N, C, H, W) and `best_l2sq` (N,) in place with every smaller
    successful iterate; returns (N,) bool, True where this step found a success.
    """
    found = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    # idx: the active examples' positions in the batch; everything below is indexed by active row
    w0, x, c, per_example = w0[idx], x[idx], c[idx], tuple(a[idx] for a in per_example)
    prev = torch.full((len(idx),), float("inf"), dtype=x.dtype, device=x.device)
    w, m, v = w0.clone(), torch.zeros_like(w0), torch.zeros_like(w0)  # (A, C, H, W)
    check_every = max(1, steps // ABORT_CHECKS)
    b1, b2 = ADAM_BETAS
    for it in range(steps):
        w.requires_grad_(True)
        adv = (torch.tanh(w) + 1) / 2
        l2sq = (adv - x).square().flatten(1).sum(1)
        term, ok = objective(adv, *per_example)  # (A,), (A,) bool
        loss = l2sq + c * term  # (A,)
        (grad,) = torch.autograd.grad(loss.sum(), w)
        with torch.no_grad():
            w, adv, loss, ok = w.detach(), adv.detach(), loss.detach(), ok.detach()
            smaller = l2sq < best_l2sq[idx]
            if confirm is not None:
                hint = ok & (smaller | ~found[idx])  # the only rows whose ok matters
                if hint.any():
                    rows = hint.nonzero()[:, 0]
                    ok = ok & ~hint
                    ok[rows] = confirm(adv[rows], *(a[rows] for a in per_example))
            found[idx[ok]] = True
            better = ok & smaller
            if better.any():
                best[idx[better]] = adv[better]
                best_l2sq[idx[better]] = l2sq[better]
            t = it + 1
            m.mul_(b1).add_(grad, alpha=1 - b1)
            v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
            denom = (v / (1 - b2**t)).sqrt_().add_(ADAM_EPS)
            w.addcdiv_(m, denom, value=-lr / (1 - b1**t))
            if abort_early and it % check_every == 0:
                keep = ~(loss > prev * ABORT_FACTOR)
                prev = loss
                if not keep.all():
                    if not keep.any():
                        break
                    idx, w, m, v, x, c, prev = (a[keep] for a in (idx, w, m, v, x, c, prev))
                    per_example = tuple(a[keep] for a in per_example)
    return found
