"""The paper's claims, each decided by one stated rule on the aggregate's 95% intervals.

Every claim has parts (a model, an attack setting); each part is decided by
`cull.stats.verdict_above`: REPRODUCED if the whole interval lies on the
claimed side of the bound, CONTRADICTED if it lies wholly on the other side,
INCONCLUSIVE if it straddles the bound or is undefined (one seed for an
across-seed interval; a model the run did not train). A claim is CONTRADICTED
if any part is, REPRODUCED if every part is, INCONCLUSIVE otherwise
(`cull.stats.all_of`). Nothing here computes an interval: every one comes from
metrics/aggregate.json.
"""
from __future__ import annotations

from cull.schema import BASELINES, DETECTOR_LABELS
from cull.stats import all_of, verdict_above

TABLE5_MODEL = ("canonical", 0.9999)  # the paper's Tables 5 and 6 are for this sanitized model
FIG45_MODELS = (("canonical", 0.9999), ("self", 0.9999999))  # the models of Fig. 4 and 5 named in §3.3
DETECT_BOUND = 0.94  # Table 5: C&W detection >= 94% at every kappa; Table 6: the system > 94% on IGSM


def find_model(agg: dict, method: str, threshold: float) -> dict | None:
    return next((m for m in agg["models"].values()
                 if m["method"] == method and abs(m["threshold"] - threshold) < 1e-12), None)


def _part(what: str, s: dict | None, bound: float, *, strict: bool = True, scale: float = 1.0) -> dict:
    verdict = verdict_above(s, bound, strict=strict)
    if s is None or s["mean"] is None:
        return {"what": what, "verdict": verdict, "mean": None, "lo": None, "hi": None, "n": 0,
                "note": "no example to measure (e.g. no successful attack)"}
    f = lambda v: None if v is None else scale * v  # noqa: E731
    return {"what": what, "verdict": verdict, "mean": f(s["mean"]), "lo": f(s["lo"]), "hi": f(s["hi"]),
            "n": s["n"], "seeds": s["seeds"], "interval": s["interval"]}


def _missing(what: str) -> dict:
    return {"what": what, "verdict": "INCONCLUSIVE", "mean": None, "lo": None, "hi": None, "n": 0,
            "note": "not trained in this run"}


def _claim(claim: str, source: str, rule: str, parts: list[dict]) -> dict:
    return {"claim": claim, "source": source, "verdict": all_of([p["verdict"] for p in parts]), "rule": rule,
            "numbers": parts}


def _vs_unsanitized(agg: dict, key: str, setting: str, what: str) -> list[dict]:
    parts = []
    for method, threshold in FIG45_MODELS:
        m = find_model(agg, method, threshold)
        label = f"{method} ≥ {threshold!r} − unsanitized: {what}"
        if m is None:
            parts.append(_missing(label))
            continue
        s = agg["effects"]["vs_unsanitized"][m["name"]][key].get(setting)
        parts.append(_part(label, s, 0.0))
    return parts


def _detector_model(agg: dict) -> dict:
    return find_model(agg, *TABLE5_MODEL) or agg["models"][agg["headline"]]


def _c1(agg):
    return _claim("Sanitization raises accuracy under IGSM-5", "Fig. 4, §3.3",
                  "paired per-seed difference (sanitized − unsanitized, IGSM-5 accuracy) has a 95% t interval "
                  "above 0, for canonical ≥ 0.9999 and for self ≥ 0.9999999",
                  _vs_unsanitized(agg, "igsm_acc", "5", "IGSM-5 accuracy (as a fraction)"))


def _c1c(agg):
    parts = []
    for method, threshold in FIG45_MODELS:
        m = find_model(agg, method, threshold)
        label = f"{method} ≥ {threshold!r} − unsanitized: IGSM-5 accuracy at the calibrated step (as a fraction)"
        diffs = agg["effects"]["alpha_vs_unsanitized"]
        if m is None or m["name"] not in diffs:
            parts.append(_missing(label))
            continue
        parts.append(_part(label, diffs[m["name"]]["calibrated"].get("5"), 0.0))
    return _claim("Sanitization raises accuracy under IGSM-5, at the step size calibrated on the unsanitized "
                  "model's 53.3%", "Fig. 4, §3.3",
                  "as C1, at each seed's IGSM step at which its unsanitized model's IGSM-5 accuracy is the "
                  "paper's (stage alpha_sweep), for the rows of params alpha_models", parts)


def _c2(agg):
    return _claim("Sanitization raises the C&W κ = 0 mean L2", "Fig. 5, §3.3",
                  "paired per-seed difference (sanitized − unsanitized, C&W κ = 0 mean L2) has a 95% t interval "
                  "above 0, for canonical ≥ 0.9999 and for self ≥ 0.9999999",
                  _vs_unsanitized(agg, "cw_l2", "0", "C&W κ = 0 mean L2"))


def _c3(agg):
    parts = []
    for method, s in agg["effects"]["slopes"].items():
        if len(s["x"]) < 3:
            for key in ("IGSM-5 accuracy", "C&W κ = 0 mean L2"):
                parts.append({**_missing(f"{method}: slope of {key}"),
                              "note": f"only {len(s['x']) - 1} {method} threshold trained; a slope over "
                                      "thresholds needs at least 2 besides the unsanitized model"})
            continue
        parts.append(_part(f"{method}: slope of IGSM-5 accuracy per nine of threshold", s["igsm_acc_5"], 0.0))
        parts.append(_part(f"{method}: slope of C&W κ = 0 mean L2 per nine of threshold", s["cw_l2_0"], 0.0))
    return _claim("The effect grows with the threshold", "Fig. 4, 5",
                  "per-seed least-squares slope over the trained thresholds of one method (x = −log10(1 − t), "
                  "the unsanitized model at 0) has a 95% t interval above 0", parts)


def _detect_rows(m: dict, attack: str) -> list[tuple[str, dict]]:
    return sorted(m["detect"][attack].items(), key=lambda kv: float(kv[0]))


def _c4(agg):
    m = _detector_model(agg)
    parts = [_part(f"{m['label']}: ROC-AUC, {'IGSM' if a == 'igsm' else 'C&W κ'} {k}", r["auc"], 0.5)
             for a in ("igsm", "cw") for k, r in _detect_rows(m, a)]
    return _claim("The KL is larger on adversarial than on normal examples", "§3.4, Fig. 7, 8",
                  "ROC-AUC of the KL (adversarial vs normal test examples) has a 95% across-seed t interval "
                  "above 0.5 at every attack setting", parts)


def _c5(agg):
    m = _detector_model(agg)
    parts = [_part(f"{m['label']}: detection of C&W κ {k}", r["detect"], DETECT_BOUND, strict=False)
             for k, r in _detect_rows(m, "cw")]
    return _claim("At 98% normal acceptance, C&W detection is ≥ 94% at every κ", "Table 5",
                  "Wilson 95% interval of the detection rate (all successful C&W examples of all seeds) lies at "
                  "or above 0.94 at every κ", parts)


def _c6(agg):
    m = _detector_model(agg)
    s = agg["effects"]["igsm_detect_slope"][m["name"]]
    return _claim("IGSM detection rises with the iteration count", "Table 5",
                  "per-seed least-squares slope of the IGSM detection rate over the iteration counts "
                  f"{', '.join(f'{k:g}' for k in s['iterations'])} has a 95% t interval above 0",
                  [_part(f"{m['label']}: detection-rate slope per IGSM iteration", s["slope"], 0.0)])


def _c7(agg):
    m = _detector_model(agg)
    parts = [_part(f"{m['label']}: system accuracy on IGSM {k}", r["system"], DETECT_BOUND)
             for k, r in _detect_rows(m, "igsm")]
    return _claim("The combined system is > 94% accurate on IGSM examples", "Table 6",
                  "Wilson 95% interval of the system's accuracy (rejected, or accepted and classified right) "
                  "on all IGSM examples of all seeds lies above 0.94 at every iteration count", parts)


def _c9(agg):
    m = _detector_model(agg)
    claim, source = "Sanitization, not any second model, makes the KL a detector", "beyond the paper (control)"
    rule = ("paired per-seed difference of ROC-AUC (the unsanitized-vs-sanitized KL minus the KL between the "
            "unsanitized models of seed s and the next seed, each on the examples made on its second model) has "
            "a 95% t interval above 0 at every attack setting")
    diffs = agg["effects"]["vs_two_seed"].get(m["name"])
    if not diffs:
        return _claim(claim, source, rule, [{**_missing(f"{m['label']} − two-seed control: ROC-AUC"),
                                             "note": "one seed: the two-seed control needs at least two"}])
    parts = [_part(f"{m['label']} − two-seed control: ROC-AUC, {'IGSM' if a == 'igsm' else 'C&W κ'} {k}", d, 0.0)
             for a in ("igsm", "cw") for k, d in sorted(diffs[a].items(), key=lambda kv: float(kv[0]))]
    return _claim(claim, source, rule, parts)


def _c8(agg):
    claim, source = "Removing outliers, not training on less data, is what helps", "beyond the paper (control)"
    rule = ("paired per-seed difference (the sanitized model − a model trained on a random subset of the same size "
            "and class counts, same seed) has a 95% t interval above 0 for IGSM-5 accuracy, C&W κ = 0 mean L2 "
            "and the KL detector's ROC-AUC on IGSM-5, for every random row of the model table")
    diffs = agg["effects"].get("vs_random") or {}
    if not diffs:
        return _claim(claim, source, rule, [{**_missing("sanitized − random culling"),
                                             "note": "the model table has no random row (method: random)"}])
    parts = []
    for name, d in diffs.items():
        label = f"{agg['models'][d['mirrors']]['label']} − {agg['models'][name]['label']}"
        parts += [_part(f"{label}: IGSM-5 accuracy (as a fraction)", d["igsm_acc"].get("5"), 0.0),
                  _part(f"{label}: C&W κ = 0 mean L2", d["cw_l2"].get("0"), 0.0),
                  _part(f"{label}: KL ROC-AUC, IGSM 5", d["auc"]["igsm"].get("5"), 0.0)]
    return _claim(claim, source, rule, parts)


def _c10(agg):
    m = _detector_model(agg)
    claim, source = "The paper's KL detector beats the standard baseline detectors", "beyond the paper (detectors)"
    rule = ("paired per-seed difference of ROC-AUC averaged over the attack settings (the paper's KL minus the "
            "baseline, both on the same examples and calibrated on the same validation normals) has a 95% t "
            "interval above 0, for feature squeezing and for the Mahalanobis detector")
    compared = agg["effects"].get("detectors", {}).get(m["name"])
    diffs = {name: d for name, d in (compared or {}).get("kl_minus", {}).items() if name in BASELINES}
    if not diffs:
        return _claim(claim, source, rule, [{**_missing(f"{m['label']}: KL − baselines, mean ROC-AUC"),
                                             "note": "no baseline detector was run (params detect.baselines)"}])
    parts = [_part(f"{m['label']}: KL − {DETECTOR_LABELS[name]}, mean ROC-AUC", d, 0.0) for name, d in diffs.items()]
    return _claim(claim, source, rule, parts)


CLAIMS = {"C1": _c1, "C1c": _c1c, "C2": _c2, "C3": _c3, "C4": _c4, "C5": _c5, "C6": _c6, "C7": _c7, "C8": _c8,
          "C9": _c9, "C10": _c10}


def verdicts(agg: dict) -> dict:
    """Claim id -> {claim, source, verdict, rule, numbers} for every claim of `CLAIMS`."""
    return {cid: fn(agg) for cid, fn in CLAIMS.items()}
