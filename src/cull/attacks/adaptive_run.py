"""Run the adaptive attacks over test images against each detector's system, rescore the oblivious C&W alike, and tally.

Beyond the paper. One system per detector (`cull.attacks.targets.DetectorSystem`:
the sanitized classifier, the detector, its tau from the detect stage): the
paper's KL, whose metrics sit at the top level, and each baseline, under
``baselines``, in the same layout. The "sum" variant runs on the KL system only.

Notation as in `cull.attacks.run`: n source test images, each attacked towards
the K - 1 other classes at each kappa, M = n (K - 1) len(kappas) rows, in
source-major, then target, then kappa order. The sources are the attack
stage's C&W sources: the same seeded choice (`choose`, stream `CW_STREAM`)
among the test images the sanitized model classifies correctly, so for
adaptive.n <= cw.n they are images the attacks archive already holds, and its
plain ("oblivious") C&W rows for them are rescored here under the same rule.

Metrics per system, variant ("adaptive", "sum", "oblivious") and kappa, over
that variant's rows at that kappa (n of them):

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
  unsanitized model outputs the target too (None if none);
- ``extra_l2`` (adaptive only): per row where the adaptive attack fools the
  system and the oblivious C&W fooled the classifier, the adaptive L2 minus the
  oblivious L2, as a sample: the distortion that the detector makes the
  attacker pay.
"""
from __future__ import annotations

import time

import numpy as np
import torch

from cull.attacks._checks import check_model, check_test_set
from cull.attacks.adaptive import ATTACKS, system_outcome
from cull.attacks.run import CW_BATCH, CW_STREAM, SearchProgress, channels_last, choose, cw_rows
from cull.attacks.targets import DetectorSystem, KLDetector
from cull.detection import kappa_key
from cull.models import to_float
from cull.params import Adaptive
from cull.schema import count_of, sample
from cull.training import predict_logits

OBLIVIOUS_KEYS = ("cw_index", "cw_source", "cw_target", "cw_kappa", "cw_adv", "cw_success", "cw_l2")
OUTCOME_KEYS = ("found", "success", "l2", "score", "accepted", "pred", "unsanitized_pred")


def sources(sanitized, test_x: np.ndarray, test_y: np.ndarray, *, n: int, seed: int, device) -> tuple[np.ndarray, int]:
    """The attack stage's C&W sources for the sanitized model (sorted test indices), and K."""
    logits = predict_logits(sanitized, test_x, device=device)
    correct = np.flatnonzero(logits.argmax(1).numpy() == test_y)
    index = choose(correct, n, seed=seed, stream=CW_STREAM, what="adaptive.n (correctly classified test images)")
    return index, logits.shape[1]


def run_variant(name: str, system: DetectorSystem, unsanitized, images: np.ndarray, rows: dict, *,
                adaptive: Adaptive, device, batch: int = CW_BATCH, desc: str | None = None) -> dict:
    """One attack of `ATTACKS` on `system` for `rows` (from `cw_rows`); (N, C, H, W) uint8 `images`.

    Returns the `OUTCOME_KEYS` arrays (M,) and ``adv`` (M, C, H, W) float32, the presented images.
    The tqdm bar counts search steps; its postfix shows the running found rate.
    """
    attack, extra = ATTACKS[name], ({"margin": adaptive.margin} if name == "adaptive" else {})
    m = len(rows["cw_index"])
    parts: dict[str, list] = {key: [] for key in ("adv", *OUTCOME_KEYS)}
    progress = SearchProgress(m, batch, adaptive.search_steps, desc=desc or name, goal="found")
    for start in range(0, m, batch):
        part = slice(start, start + batch)
        x = to_float(torch.as_tensor(images[rows["cw_index"][part]]).to(device))
        res = attack(
            system, x,
            torch.as_tensor(rows["cw_source"][part]).to(device), torch.as_tensor(rows["cw_target"][part]).to(device),
            kappa=torch.as_tensor(rows["cw_kappa"][part], dtype=x.dtype).to(device),
            initial_c=adaptive.initial_c, steps=adaptive.steps, search_steps=adaptive.search_steps, lr=adaptive.lr,
            on_search_step=progress.step, **extra,
        )
        with torch.no_grad():
            unsanitized_pred = unsanitized(res.images).argmax(1)
        for key, value in (("adv", res.images.float()), ("found", res.found), ("success", res.success),
                           ("l2", res.l2.double()), ("score", res.score), ("accepted", res.accepted),
                           ("pred", res.pred), ("unsanitized_pred", unsanitized_pred)):
            parts[key].append(value.cpu().numpy())
        progress.batch_done(len(x), int(res.found.sum()))
    progress.close()
    return {key: np.concatenate(value) for key, value in parts.items()}


def oblivious_rows(attacks: dict, index: np.ndarray, test_y: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray]:
    """The attacks archive's C&W rows for the sources `index`: (rows in `cw_rows` form, adv, found)."""
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
    rows["cw_l2"] = np.asarray(attacks["cw_l2"], dtype=np.float64)[keep]
    return rows, np.asarray(attacks["cw_adv"][keep], dtype=np.float32), np.asarray(attacks["cw_success"], bool)[keep]


def score_oblivious(system: DetectorSystem, unsanitized, rows: dict, adv: np.ndarray, found: np.ndarray, *,
                    device) -> dict:
    """Outcome arrays (`OUTCOME_KEYS`) of the oblivious rows under `system`; found = the archive's cw_success."""
    images = torch.as_tensor(adv).to(device)
    out = system_outcome(system, images, torch.as_tensor(rows["cw_target"]).to(device),
                         torch.as_tensor(found).to(device))
    return {"found": found, "success": out["success"].cpu().numpy(),
            "l2": np.where(found, rows["cw_l2"], np.nan),
            "score": out["score"].cpu().numpy(), "accepted": out["accepted"].cpu().numpy(),
            "pred": out["pred"].cpu().numpy(),
            "unsanitized_pred": predict_logits(unsanitized, adv, device=device).argmax(1).numpy()}


def _extra_l2(rows: dict, outcome: dict, reference: tuple[dict, dict], at: np.ndarray) -> dict:
    """Sample of adaptive L2 - oblivious L2 over this kappa's rows where both fooled their target."""
    ref_rows, ref_out = reference
    oblivious = {(int(i), int(t), float(k)): l2 for i, t, k, l2, ok in
                 zip(ref_rows["cw_index"], ref_rows["cw_target"], ref_rows["cw_kappa"], ref_out["l2"], ref_out["found"])
                 if ok}
    diffs = [l2 - oblivious[key] for key, l2, ok in
             zip(zip(rows["cw_index"][at].tolist(), rows["cw_target"][at].tolist(),
                     np.asarray(rows["cw_kappa"][at], dtype=float).tolist()), outcome["l2"][at], outcome["success"][at])
             if ok and key in oblivious]
    return sample(diffs)


def tally(rows: dict, outcome: dict, *, threshold: float, reference: tuple[dict, dict] | None = None) -> dict:
    """{kappa key: metrics} (see the module docstring) for one variant's rows and outcome arrays.

    Rates are `cull.schema` count leaves, L2 distortions sample leaves. With
    `reference`, the oblivious (rows, outcome), each row also gets ``extra_l2``.
    """
    table = {}
    for k in sorted(set(np.asarray(rows["cw_kappa"], dtype=np.float64))):
        at = rows["cw_kappa"] == k
        found, success = outcome["found"][at], outcome["success"][at]
        l2 = outcome["l2"][at]
        accepted, score = outcome["accepted"][at], outcome["score"][at]
        pred, source = outcome["pred"][at], rows["cw_source"][at]
        system = ~(score <= threshold) | (pred == source)  # the Fig. 9 system is right on an adversarial x
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
        if reference is not None:
            table[kappa_key(k)]["extra_l2"] = _extra_l2(rows, outcome, reference, at)
    return table


def attack_system(unsanitized, systems: dict[str, DetectorSystem], test_x: np.ndarray, test_y: np.ndarray, *,
                  adaptive: Adaptive, seed: int, device, oblivious: dict | None = None):
    """The adaptive attacks on adaptive.n seeded sources x every other class x every kappa, per system.

    `systems`: detector name -> its system, the paper's KL first (from `cull.attacks.targets.detector_systems`),
    all with the same classifier. `oblivious`, the attack stage's archive for that classifier, adds its
    rows for the same sources, rescored under each system. Returns (arrays for the stage's .npz, metrics
    for its JSON, seconds per part).
    """
    check_model(unsanitized)
    test_y = check_test_set(test_x, test_y)
    names = list(systems)
    head = systems[names[0]]
    if not isinstance(head.detector, KLDetector):
        raise ValueError(f"systems: the first must be the KL detector's, got {names[0]!r}")
    unsanitized = channels_last(unsanitized)
    for system in systems.values():
        channels_last(system)
    index, num_classes = sources(head.classifier, test_x, test_y, n=adaptive.n, seed=seed, device=device)
    rows = cw_rows(index, test_y[index], adaptive.kappas, num_classes)
    arrays = {key.removeprefix("cw_"): value for key, value in rows.items()}
    reference = None
    if oblivious is not None:
        o_rows, o_adv, o_found = oblivious_rows(oblivious, index, test_y)
        arrays.update({f"oblivious_{key.removeprefix('cw_')}": value for key, value in o_rows.items()})
    seconds, per_system = {}, {}
    for name, system in systems.items():
        prefix = "" if name == names[0] else f"{name}_"
        metrics = {"threshold": system.threshold}
        o_out = None
        if oblivious is not None:
            o_out = score_oblivious(system, unsanitized, o_rows, o_adv, o_found, device=device)
            reference = (o_rows, o_out)
            arrays.update({f"{prefix}oblivious_{key}": value for key, value in o_out.items()})
        for variant in ATTACKS if name == names[0] else ("adaptive",):
            clock = time.perf_counter()
            out = run_variant(variant, system, unsanitized, test_x, rows, adaptive=adaptive, device=device,
                              desc=f"{name} {variant}")
            seconds[f"{name} {variant}"] = time.perf_counter() - clock
            arrays.update({f"{prefix}{variant}_{key}": value for key, value in out.items()})
            metrics[variant] = tally(rows, out, threshold=system.threshold,
                                     reference=reference if variant == "adaptive" else None)
        metrics["oblivious"] = None if o_out is None else tally(o_rows, o_out, threshold=system.threshold)
        per_system[name] = metrics
    kl = per_system.pop(names[0])
    metrics = {"divergence": head.detector.kind, "margin": adaptive.margin, "n_sources": int(len(index)),
               "steps": adaptive.steps, "search_steps": adaptive.search_steps,
               "n_oblivious_sources": 0 if oblivious is None else int(len(np.unique(o_rows["cw_index"]))),
               **kl, "baselines": per_system}
    return arrays, metrics, seconds


def summary_line(metrics: dict, seconds: dict) -> str:
    def cells(table):
        return " ".join(f"{k}:{v['success_rate']['rate']:.2f}/"
                        + ("-" if v["mean_l2"]["mean"] is None else f"{v['mean_l2']['mean']:.3f}")
                        for k, v in (table or {}).items()) or "not run"

    parts = [f"{metrics['divergence']} {name} {cells(metrics.get(name))}" for name in (*ATTACKS, "oblivious")]
    parts += [f"{name} adaptive {cells(m.get('adaptive'))}" for name, m in metrics["baselines"].items()]
    timing = " + ".join(f"{name} {s:.0f}s" for name, s in seconds.items())
    return (f"{metrics['divergence']} tau={metrics['threshold']:.4g} on {metrics['n_sources']} source(s) | "
            f"system fooled / mean L2 by kappa: {' | '.join(parts)} | {timing}")
