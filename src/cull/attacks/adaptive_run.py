"""Run the adaptive attacks over test images, rescore the oblivious C&W alike, and tally (beyond the paper).

Notation as in `cull.attacks.run`: n source test images, each attacked towards
the K - 1 other classes at each kappa, M = n (K - 1) len(kappas) rows, in
source-major, then target, then kappa order. The sources are the attack
stage's C&W sources: the same seeded choice (`choose`, stream `CW_STREAM`)
among the test images the sanitized model classifies correctly, so for
adaptive.n <= cw.n they are images the attacks archive already holds, and its
plain ("oblivious") C&W rows for them are rescored here under the same rule.

Metrics per variant ("adaptive", "sum", "oblivious") and kappa, over that
variant's rows at that kappa (n of them):

- ``success_rate``: fraction that fool the system (`system_outcome`: found,
  accepted by the detector, and the sanitized model outputs the target);
- ``mean_l2``: mean L2 of those (None if none);
- ``found_rate``, ``found_mean_l2``: the attack's own goal (oblivious: fools the
  sanitized model alone), and the mean L2 where met;
- ``accepted_rate``: of the found examples, the fraction the detector accepts
  (None if none found); for "oblivious" it is 1 - the detection rate;
- ``system_acc``: the Fig. 9 system's accuracy on the presented images
  (`cull.detection.system_accuracy`, adversarial): 1 - success_rate, unless an
  accepted image lands on a third class;
- ``unsanitized_hit_rate``: of the successes, the fraction on which the
  unsanitized model outputs the target too (None if none).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from cull.attacks._checks import check_model, check_test_set
from cull.attacks.adaptive import ATTACKS, system_outcome
from cull.attacks.run import CW_BATCH, CW_STREAM, SearchProgress, channels_last, choose, cw_rows
from cull.detection import kappa_key
from cull.models import to_float
from cull.params import Adaptive
from cull.schema import count_of, sample
from cull.training import predict_logits

OBLIVIOUS_KEYS = ("cw_index", "cw_source", "cw_target", "cw_kappa", "cw_adv", "cw_success", "cw_l2")
OUTCOME_KEYS = ("found", "success", "l2", "divergence", "accepted", "pred", "unsanitized_pred")


def sources(sanitized, test_x: np.ndarray, test_y: np.ndarray, *, n: int, seed: int, device) -> tuple[np.ndarray, int]:
    """The attack stage's C&W sources for the sanitized model (sorted test indices), and K."""
    logits = predict_logits(sanitized, test_x, device=device)
    correct = np.flatnonzero(logits.argmax(1).numpy() == test_y)
    index = choose(correct, n, seed=seed, stream=CW_STREAM, what="adaptive.n (correctly classified test images)")
    return index, logits.shape[1]


def run_variant(name: str, unsanitized, sanitized, images: np.ndarray, rows: dict, *, adaptive: Adaptive,
                kind: str, threshold: float, device, batch: int = CW_BATCH) -> dict:
    """One attack of `ATTACKS` on `rows` (from `cw_rows`); (N, C, H, W) uint8 `images` indexed by rows["cw_index"].

    Returns the `OUTCOME_KEYS` arrays (M,) and ``adv`` (M, C, H, W) float32, the presented images.
    The tqdm bar counts search steps; its postfix shows the running found rate.
    """
    attack, extra = ATTACKS[name], ({"kl_margin": adaptive.kl_margin} if name == "adaptive" else {})
    m = len(rows["cw_index"])
    parts: dict[str, list] = {key: [] for key in ("adv", *OUTCOME_KEYS)}
    progress = SearchProgress(m, batch, adaptive.search_steps, desc=name, goal="found")
    for start in range(0, m, batch):
        part = slice(start, start + batch)
        x = to_float(torch.as_tensor(images[rows["cw_index"][part]]).to(device))
        res = attack(
            unsanitized, sanitized, x,
            torch.as_tensor(rows["cw_source"][part]).to(device), torch.as_tensor(rows["cw_target"][part]).to(device),
            threshold=threshold, divergence_kind=kind,
            kappa=torch.as_tensor(rows["cw_kappa"][part], dtype=x.dtype).to(device),
            initial_c=adaptive.initial_c, steps=adaptive.steps, search_steps=adaptive.search_steps, lr=adaptive.lr,
            on_search_step=progress.step, **extra,
        )
        for key, value in (("adv", res.images.float()), ("found", res.found), ("success", res.success),
                           ("l2", res.l2.double()), ("divergence", res.divergence), ("accepted", res.accepted),
                           ("pred", res.sanitized_pred), ("unsanitized_pred", res.unsanitized_pred)):
            parts[key].append(value.cpu().numpy())
        progress.batch_done(len(x), int(res.found.sum()))
    progress.close()
    return {key: np.concatenate(value) for key, value in parts.items()}


def score_oblivious(unsanitized, sanitized, attacks: dict, index: np.ndarray, test_y: np.ndarray, *,
                    kind: str, threshold: float, device) -> tuple[dict, dict]:
    """The attacks archive's C&W rows for the sources `index`, scored like the adaptive ones.

    Returns (rows in `cw_rows` form, outcome arrays with `OUTCOME_KEYS`); found = the archive's cw_success.
    """
    missing = [key for key in OBLIVIOUS_KEYS if key not in attacks]
    if missing:
        raise ValueError(f"attacks: missing arrays {missing} (found {sorted(attacks)})")
    cw_index = np.asarray(attacks["cw_index"])
    if len(cw_index) and (cw_index.min() < 0 or cw_index.max() >= len(test_y)):
        raise ValueError(f"attacks: cw_index outside the {len(test_y)} test examples; wrong dataset?")
    if not np.array_equal(np.asarray(test_y)[cw_index], attacks["cw_source"]):
        raise ValueError("attacks: cw_source disagrees with test_y at cw_index; wrong dataset?")
    keep = np.isin(cw_index, index)
    rows = {key: np.asarray(attacks[key])[keep] for key in ("cw_index", "cw_source", "cw_target", "cw_kappa")}
    adv = np.asarray(attacks["cw_adv"][keep], dtype=np.float32)
    found = np.asarray(attacks["cw_success"], dtype=bool)[keep]
    z_u = predict_logits(unsanitized, adv, device=device)
    z_s = predict_logits(sanitized, adv, device=device)
    out = system_outcome(z_u, z_s, torch.as_tensor(rows["cw_target"]), torch.as_tensor(found),
                         threshold=threshold, divergence_kind=kind)
    outcome = {"found": found, "success": out["success"].numpy(),
               "l2": np.where(found, np.asarray(attacks["cw_l2"], dtype=np.float64)[keep], np.nan),
               "divergence": out["divergence"].numpy(), "accepted": out["accepted"].numpy(),
               "pred": out["sanitized_pred"].numpy(), "unsanitized_pred": out["unsanitized_pred"].numpy()}
    return rows, outcome


def tally(rows: dict, outcome: dict, *, threshold: float) -> dict:
    """{kappa key: metrics} (see the module docstring) for one variant's rows and outcome arrays.

    Rates are `cull.schema` count leaves, L2 distortions sample leaves.
    """
    table = {}
    for k in sorted(set(np.asarray(rows["cw_kappa"], dtype=np.float64))):
        at = rows["cw_kappa"] == k
        found, success = outcome["found"][at], outcome["success"][at]
        l2 = outcome["l2"][at]
        accepted, divergence = outcome["accepted"][at], outcome["divergence"][at]
        pred, source = outcome["pred"][at], rows["cw_source"][at]
        system = ~(divergence <= threshold) | (pred == source)  # the Fig. 9 system is right on an adversarial x
        table[kappa_key(k)] = {
            "n": int(at.sum()),
            "success_rate": count_of(success),
            "mean_l2": sample(l2[success]),
            "accepted_rate": count_of(accepted[found]),
            "system_acc": count_of(system),
            "found_rate": count_of(found),
            "found_mean_l2": sample(l2[found]),
            "unsanitized_hit_rate": count_of((outcome["unsanitized_pred"][at] == rows["cw_target"][at])[success]),
        }
    return table


def attack_system(unsanitized, sanitized, test_x: np.ndarray, test_y: np.ndarray, *, adaptive: Adaptive,
                  detector: tuple[str, float], seed: int, device, oblivious: dict | None = None):
    """Both adaptive variants on adaptive.n seeded sources x every other class x every kappa.

    `detector` is (divergence kind, tau) from `cull.detection.read_detect_metrics`; `oblivious`, the
    attack stage's archive for the sanitized model, adds its rows for the same
    sources. Returns (arrays for the stage's .npz, metrics for its JSON, seconds per part).
    """
    for model in (unsanitized, sanitized):
        check_model(model)
    test_y = check_test_set(test_x, test_y)
    kind, tau = detector
    unsanitized, sanitized = channels_last(unsanitized), channels_last(sanitized)
    index, num_classes = sources(sanitized, test_x, test_y, n=adaptive.n, seed=seed, device=device)
    rows = cw_rows(index, test_y[index], adaptive.kappas, num_classes)
    arrays = {key.removeprefix("cw_"): value for key, value in rows.items()}
    metrics = {"divergence": kind, "threshold": tau, "kl_margin": adaptive.kl_margin, "n_sources": int(len(index)),
               "steps": adaptive.steps, "search_steps": adaptive.search_steps}
    seconds = {}
    for name in ATTACKS:
        clock = time.perf_counter()
        out = run_variant(name, unsanitized, sanitized, test_x, rows, adaptive=adaptive, kind=kind, threshold=tau,
                          device=device)
        seconds[name] = time.perf_counter() - clock
        arrays.update({f"{name}_{key}": value for key, value in out.items()})
        metrics[name] = tally(rows, out, threshold=tau)
    metrics["oblivious"], metrics["n_oblivious_sources"] = None, 0
    if oblivious is not None:
        o_rows, o_out = score_oblivious(unsanitized, sanitized, oblivious, index, test_y, kind=kind, threshold=tau,
                                        device=device)
        arrays.update({f"oblivious_{key.removeprefix('cw_')}": value for key, value in o_rows.items()})
        arrays.update({f"oblivious_{key}": value for key, value in o_out.items()})
        metrics["oblivious"] = tally(o_rows, o_out, threshold=tau)
        metrics["n_oblivious_sources"] = int(len(np.unique(o_rows["cw_index"])))
    return arrays, metrics, seconds


def summary_line(metrics: dict, seconds: dict) -> str:
    def cells(table):
        return " ".join(f"{k}:{v['success_rate']['rate']:.2f}/"
                        + ("-" if v["mean_l2"]["mean"] is None else f"{v['mean_l2']['mean']:.3f}")
                        for k, v in (table or {}).items()) or "not run"

    parts = [f"{name} {cells(metrics.get(name))}" for name in (*ATTACKS, "oblivious")]
    timing = " + ".join(f"{name} {s:.0f}s" for name, s in seconds.items())
    return (f"{metrics['divergence']} tau={metrics['threshold']:.4g} on {metrics['n_sources']} source(s) | "
            f"system fooled / mean L2 by kappa: {' | '.join(parts)} | {timing}")
