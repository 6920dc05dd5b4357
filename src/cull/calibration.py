"""The IGSM step size alpha, which the paper does not give: a sweep, its calibration, and Fig. 4 at it.

The paper states IGSM's iteration counts (5, 10, 15) but neither eps nor the
step alpha. Its Fig. 4 reports the *unsanitized* model's accuracy under IGSM-5
(53.3% on MNIST). That number describes the set-up (how strong the attack is
on the baseline model), not an outcome of sanitization, so it may calibrate
alpha; the sanitized models' accuracies at that alpha are then measured, never
tuned. Per seed, so that adding a seed reruns nothing of the others:

1. `sweep` (stage alpha_sweep): the unsanitized model of one seed, IGSM at
   every alpha of params ``alpha.alphas`` (eps from params ``igsm``), accuracy
   at each iteration count, and `calibrate`: the alpha at which that seed's
   IGSM-5 accuracy equals ``alpha.target_accuracy``, interpolated linearly
   between the two grid points that bracket it.
2. `accuracy_at` (stages igsm_alpha*): one model of one seed under IGSM at that
   seed's calibrated alpha and at the reference alpha (cleverhans' default
   eps_iter, 0.05).

Every run attacks the same ``alpha.n`` seeded test images per seed (correct or
not, as the attack stage's IGSM does); a larger n keeps the smaller n's images.
"""
from __future__ import annotations

import numpy as np

from cull.attacks.run import IGSM_STREAM, channels_last, choose, run_igsm
from cull.params import Alpha, Igsm
from cull.schema import count_of

def alpha_key(alpha: float) -> str:
    """The JSON key of a step size: 0.02 -> '0.02' (repr of the float, so keys round-trip)."""
    return repr(float(alpha))


def _accuracy(model, test_x, test_y, index, *, eps: float, alpha: float, iterations, device) -> dict:
    out = run_igsm(model, test_x[index], test_y[index], igsm=Igsm(eps=eps, alpha=alpha, iterations=list(iterations),
                                                                  n=len(index)), device=device)
    return {str(k): count_of(out["pred"][k] == test_y[index]) for k in sorted(out["pred"])}


def sweep(model, test_x: np.ndarray, test_y: np.ndarray, *, alpha: Alpha, igsm: Igsm, seed: int, device) -> dict:
    """IGSM accuracy of `model` at every step size of `alpha.alphas` and every count of `igsm.iterations`.

    Arguments:
        model: the unsanitized classifier of `seed`, in eval mode.
        test_x, test_y: the test set, (N, C, H, W) uint8 and (N,) labels.
        alpha: params ``alpha`` (the grid and n); igsm: params ``igsm`` (eps, iterations).
        seed: the model seed; it chooses the ``alpha.n`` test images.

    Returns:
        ``{"eps", "n_images", "acc": {alpha_key(a): {str(k): count leaf}}}``.
    """
    index = choose(np.arange(len(test_y)), alpha.n, seed=seed, stream=IGSM_STREAM, what="alpha.n")
    model = channels_last(model)
    acc = {alpha_key(a): _accuracy(model, test_x, test_y, index, eps=igsm.eps, alpha=a, iterations=igsm.iterations,
                                   device=device) for a in alpha.alphas}
    return {"eps": igsm.eps, "n_images": int(len(index)), "acc": acc}


def calibrate(swept: dict, *, alpha: Alpha, iterations: int = 5) -> dict:
    """The step size at which the IGSM-`iterations` accuracy of one `sweep` result equals the target.

    The target must be bracketed by two neighbouring grid points (accuracy falls
    as alpha grows, up to alpha = eps / iterations); the calibrated alpha is the
    linear interpolation between the first such pair.

    Returns:
        ``{"alpha", "target_accuracy", "iterations", "bracket": [lo, hi], "reference"}``.

    Raises:
        ValueError naming ``alpha.alphas`` when no pair of grid points brackets the target.
    """
    grid = [float(a) for a in alpha.alphas]
    acc = [swept["acc"][alpha_key(a)][str(iterations)]["rate"] for a in grid]
    target = alpha.target_accuracy
    for (a0, m0), (a1, m1) in zip(zip(grid, acc), zip(grid[1:], acc[1:])):
        if min(m0, m1) <= target <= max(m0, m1):
            at = a0 if m0 == m1 else a0 + (target - m0) * (a1 - a0) / (m1 - m0)
            return {"alpha": float(at), "target_accuracy": target, "iterations": iterations, "bracket": [a0, a1],
                    "reference": alpha.reference}
    raise ValueError(f"alpha.alphas: no two neighbouring step sizes in [{grid[0]:g}, {grid[-1]:g}] bracket the "
                     f"target IGSM-{iterations} accuracy {100 * target:.1f}% (the accuracy runs from "
                     f"{100 * max(acc):.1f}% to {100 * min(acc):.1f}%); widen the grid")


def accuracy_at(model, test_x: np.ndarray, test_y: np.ndarray, *, calibrated: dict, alpha: Alpha, igsm: Igsm,
                seed: int, device) -> dict:
    """IGSM accuracy of one model of `seed` at that seed's calibrated step size (`calibrate`) and at the reference.

    Returns:
        ``{"eps", "n_images", "calibrated": {"alpha", "acc": {str(k): count}},
        "reference": {"alpha", "acc": {...}}}``, on the same images as `sweep`.
    """
    index = choose(np.arange(len(test_y)), alpha.n, seed=seed, stream=IGSM_STREAM, what="alpha.n")
    model = channels_last(model)
    out = {"eps": igsm.eps, "n_images": int(len(index))}
    for name, a in (("calibrated", calibrated["alpha"]), ("reference", alpha.reference)):
        out[name] = {"alpha": float(a), "acc": _accuracy(model, test_x, test_y, index, eps=igsm.eps, alpha=a,
                                                         iterations=igsm.iterations, device=device)}
    return out


def summary_line(result: dict) -> str:
    """One line for a stage's log: accuracy at each iteration count, per step size (a `sweep` or an `accuracy_at`)."""
    def counts(acc: dict) -> str:
        return " ".join(f"{k}:{v['rate']:.3f}" for k, v in acc.items())

    if "acc" in result:  # a sweep, with its calibration
        parts = [f"alpha {a}: {counts(acc)}" for a, acc in result["acc"].items()]
        if "calibrated" in result:
            parts.append(f"calibrated alpha {result['calibrated']['alpha']:.4f}")
    else:
        parts = [f"{name} alpha {result[name]['alpha']:.4f}: {counts(result[name]['acc'])}"
                 for name in ("calibrated", "reference")]
    return f"IGSM accuracy on {result['n_images']} images | " + " | ".join(parts)
