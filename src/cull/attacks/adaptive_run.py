"""Run every threat model of params against each detector's system; one results file per threat model.

Beyond the paper. A threat model (`cull.params.ThreatModel`) names an attack
(a params section callable on a target), its target and so what the attacker
knows. One system per detector (`cull.attacks.targets.DetectorSystem`: the
sanitized classifier, the detector, its tau from the detect stage). Every
threat model but the oblivious one attacks the system of its detector (the
system itself, or its summed logits); the oblivious one is the attack stage's
C&W on the classifier alone, rescored under every system.

Notation as in `cull.attacks.run`: n source test images, each attacked towards
the K - 1 other classes at each kappa, M = n (K - 1) len(kappas) rows, in
source-major, then target, then kappa order. The sources are the attack
stage's C&W sources: the same seeded choice (`choose`, stream `CW_STREAM`)
among the test images the sanitized model classifies correctly, so for
adaptive.n <= cw.n they are images the attacks archive already holds, and its
plain ("oblivious") C&W rows for them are rescored here under the same rule.

Results: one dict per threat model, in the schema of
`cull.schema.check_threat_result` (the stage writes each to
``threats/<name>.json``). Per system and kappa, over that threat model's rows
at that kappa (n of them), `tally` gives:

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
- ``extra_l2`` (every threat model but the oblivious one, when its rows ran):
  per row where the attack fools the system and the oblivious C&W fooled the
  classifier, its L2 minus the oblivious L2, as a sample: the distortion that
  the detector makes that attacker pay.
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np
import torch

from cull.attacks._checks import check_model, check_test_set
from cull.attacks.adaptive import AdaptiveCW, evaluate
from cull.attacks.cw import AttackResult
from cull.attacks.run import CW_BATCH, CW_STREAM, channels_last, choose, cw_rows, run_rows
from cull.attacks.targets import DetectorSystem, KLDetector, threat_target
from cull.detection import kappa_key
from cull.params import OBLIVIOUS, Adaptive, Cw, ThreatModel
from cull.schema import VARIANTS, count_of, sample
from cull.training import predict_logits

OBLIVIOUS_KEYS = ("cw_index", "cw_source", "cw_target", "cw_kappa", "cw_adv", "cw_success", "cw_l2")
OUTCOME_KEYS = ("found", "success", "l2", "score", "accepted", "pred", "unsanitized_pred")


def sources(sanitized, test_x: np.ndarray, test_y: np.ndarray, *, n: int, seed: int, device) -> tuple[np.ndarray, int]:
    """The attack stage's C&W sources for the sanitized model (sorted test indices), and K."""
    logits = predict_logits(sanitized, test_x, device=device)
    correct = np.flatnonzero(logits.argmax(1).numpy() == test_y)
    index = choose(correct, n, seed=seed, stream=CW_STREAM, what="adaptive.n (correctly classified test images)")
    return index, logits.shape[1]


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


def scored(system: DetectorSystem, result: AttackResult, targets: torch.Tensor) -> dict[str, torch.Tensor]:
    """`run_rows`' score: an attack's batch as `system` sees it (`evaluate`), less the images and L2."""
    out = evaluate(system, result, targets)
    return {"found": out.found, "success": out.success, "score": out.score, "accepted": out.accepted,
            "pred": out.pred}


def score_oblivious(system: DetectorSystem, unsanitized, rows: dict, adv: np.ndarray, found: np.ndarray, *,
                    device) -> dict:
    """Outcome arrays (`OUTCOME_KEYS`) of the oblivious rows under `system`; found = the archive's cw_success."""
    images = torch.as_tensor(adv).to(device)
    found_t = torch.as_tensor(found).to(device)
    l2 = torch.as_tensor(np.where(found, rows["cw_l2"], np.nan)).to(device)
    out = evaluate(system, AttackResult(images, found_t, l2), torch.as_tensor(rows["cw_target"]).to(device))
    return {"found": found, "success": out.success.cpu().numpy(), "l2": l2.cpu().numpy(),
            "score": out.score.cpu().numpy(), "accepted": out.accepted.cpu().numpy(), "pred": out.pred.cpu().numpy(),
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


def _result(threat: ThreatModel, settings: dict, n_sources: int, systems: dict) -> dict:
    """One threat model's results (`cull.schema.check_threat_result`)."""
    return {"threat_model": {"name": threat.name, "attack": threat.attack, "target": threat.target,
                             "detector": threat.detector, "knows": threat.knows},
            "attack": settings, "n_sources": int(n_sources), "systems": systems}


def attack_system(unsanitized, systems: dict[str, DetectorSystem], threats: list[ThreatModel], test_x: np.ndarray,
                  test_y: np.ndarray, *, adaptive: Adaptive, seed: int, device, oblivious: dict | None = None,
                  cw: Cw | None = None):
    """Every threat model of `threats` on adaptive.n seeded sources x every other class x every kappa.

    `systems`: detector name -> its system, the paper's KL first (from `cull.attacks.targets.detector_systems`),
    all with the same classifier; each threat model but the oblivious one attacks the system of its detector,
    with the `adaptive` settings. `oblivious`, the attack stage's archive for that classifier (made with the
    `cw` settings), gives the oblivious threat model's rows for the same sources, rescored under every system;
    without it the oblivious threat model has no results and no row an extra L2. Returns (arrays for the
    stage's .npz, {threat-model name: its results}, seconds per threat model).
    """
    check_model(unsanitized)
    test_y = check_test_set(test_x, test_y)
    names = list(systems)
    head = systems[names[0]]
    if not isinstance(head.detector, KLDetector):
        raise ValueError(f"systems: the first must be the KL detector's, got {names[0]!r}")
    for threat in threats:
        if threat.name != OBLIVIOUS and threat.detector not in systems:
            raise ValueError(f"threat_models.{threat.name}: no system for detector {threat.detector!r} "
                             f"(systems: {', '.join(names)})")
    unsanitized = channels_last(unsanitized)
    for system in systems.values():
        channels_last(system)
    index, num_classes = sources(head.classifier, test_x, test_y, n=adaptive.n, seed=seed, device=device)
    rows = cw_rows(index, test_y[index], adaptive.kappas, num_classes)
    arrays = {key.removeprefix("cw_"): value for key, value in rows.items()}
    rescore = oblivious is not None and any(t.name == OBLIVIOUS for t in threats)
    if rescore:
        o_rows, o_adv, o_found = oblivious_rows(oblivious, index, test_y)
        arrays.update({f"oblivious_{key.removeprefix('cw_')}": value for key, value in o_rows.items()})
    seconds, tallies, references = {}, {t.name: {} for t in threats}, {}
    for name, system in systems.items():
        prefix = "" if name == names[0] else f"{name}_"
        if rescore:
            o_out = score_oblivious(system, unsanitized, o_rows, o_adv, o_found, device=device)
            references[name] = (o_rows, o_out)
            arrays.update({f"{prefix}oblivious_{key}": value for key, value in o_out.items()})
            tallies[OBLIVIOUS][name] = {"threshold": system.threshold,
                                        "kappas": tally(o_rows, o_out, threshold=system.threshold)}
        for threat in (t for t in threats if t.name != OBLIVIOUS and t.detector == name):
            clock = time.perf_counter()
            out = run_rows(AdaptiveCW.of(adaptive), threat_target(threat, system), test_x, rows, device=device,
                           search_steps=adaptive.search_steps, desc=threat.name,
                           score=lambda res, targets, system=system: scored(system, res, targets),
                           also={"unsanitized": unsanitized})
            seconds[threat.name] = time.perf_counter() - clock
            arrays.update({f"{prefix}{VARIANTS[threat.target]}_{key}": value for key, value in out.items()})
            tallies[threat.name][name] = {"threshold": system.threshold,
                                          "kappas": tally(rows, out, threshold=system.threshold,
                                                          reference=references.get(name))}
    n_oblivious = int(len(np.unique(o_rows["cw_index"]))) if rescore else 0
    results = {}
    for threat in threats:
        if threat.name == OBLIVIOUS:
            if rescore:
                settings = {"section": "cw", **(dataclasses.asdict(cw) if cw is not None else {})}
                results[threat.name] = _result(threat, settings, n_oblivious, tallies[threat.name])
        else:
            results[threat.name] = _result(threat, {"section": threat.attack, **dataclasses.asdict(adaptive)},
                                           len(index), tallies[threat.name])
    return arrays, results, seconds


def summary_line(results: dict, seconds: dict) -> str:
    """One line: per threat model and system, the fooled fraction / mean L2 by kappa, and the time taken."""
    def cells(table):
        return " ".join(f"{k}:{v['success_rate']['rate']:.2f}/"
                        + ("-" if v["mean_l2"]["mean"] is None else f"{v['mean_l2']['mean']:.3f}")
                        for k, v in table.items()) or "no rows"

    parts = [f"{name}" + ("" if len(r["systems"]) == 1 else f" [{detector}]") + f" {cells(system['kappas'])}"
             for name, r in results.items() for detector, system in r["systems"].items()]
    taus = {d: s["threshold"] for r in results.values() for d, s in r["systems"].items()}
    timing = " + ".join(f"{name} {s:.0f}s" for name, s in seconds.items())
    n = max((r["n_sources"] for r in results.values()), default=0)
    return (f"{len(results)} threat model(s) on {n} source(s), tau " + ", ".join(f"{d}={t:.4g}" for d, t in taus.items())
            + f" | system fooled / mean L2 by kappa: {' | '.join(parts)} | {timing}")
