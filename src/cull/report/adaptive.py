"""Section 12: the adaptive attacker, who knows the detector (beyond the paper).

It compares nothing with the paper, so it adds no `Gap`; it says in words
whether the defence holds or breaks on each model.
"""
from __future__ import annotations

from cull.report.inputs import Inputs, Model, _get
from cull.report.markdown import DASH, _num, _pct, _table, mean
from cull.schema import DETECTOR_LABELS, THREATS, systems_of

DEFENCE_BROKEN = 0.5  # the adaptive attacker "breaks" the defence when it fools the system this often (a fraction)


# The adaptive section has its own "not run" wording: it is beyond the paper, and a run made
# before stage attack_adaptive existed is otherwise complete. The summary line counts it too.
ADAPTIVE_NOT_RUN = "_Adaptive attack not run:"
ADAPTIVE_VARIANTS = (("oblivious", "oblivious C&W"), ("adaptive", "adaptive C&W"), ("sum", "C&W on summed logits"))


def _strongest(a: dict, variants: tuple[str, ...]) -> tuple[str, str, dict] | None:
    """(variant, kappa key, row) with the highest mean success rate, then the smallest mean L2; None if none ran."""
    rows = [(v, k, r) for v in variants for k, r in (a.get(v) or {}).items() if mean(r["success_rate"]) is not None]
    if not rows:
        return None
    return max(rows, key=lambda vkr: (mean(vkr[2]["success_rate"]), -(mean(vkr[2]["mean_l2"]) or 0.0)))


def _pct_n(x) -> str:
    """A rate as "mean [lo, hi]% (n=N)": the percent sign on the numbers, not after the count."""
    return f"{_pct(x, n=False)}%" + (f" (n={x['n']})" if isinstance(x, dict) and "n" in x else "")


def _settings(m: Model) -> dict:
    """The adaptive attack's settings and source count of model `m` (any threat model but the oblivious)."""
    run = next((r for r in m.threats.values() if r["threat_model"]["target"] != "classifier"), None)
    return {} if run is None else {"n_sources": run["n_sources"], **run["attack"]}


def _adaptive_verdict(m: Model, a: dict, detector: str | None = None) -> list[str]:
    """Whether the defence holds on model `m`, for the system `a` (`systems_of`; default: the KL's)."""
    run = _settings(m)
    best = _strongest(a, ("adaptive", "sum"))
    if best is None:
        return [f"{m.label}: no adaptive row in {m.files}/{THREATS}."]
    what = f"{m.label} model" + (f" with the {detector} detector" if detector else "")
    variant, kappa, row = best
    names = dict(ADAPTIVE_VARIANTS)
    oblivious = _strongest(a, ("oblivious",))
    versus = (f"the oblivious attacker of §3.4: {_pct_n(oblivious[2]['success_rate'])} at best" if oblivious
              else "no oblivious rows to compare")
    reference = _get(a, "oblivious", "0", "found_mean_l2")  # distortion to fool the sanitized classifier alone
    rate = row["success_rate"]
    # "Breaks" and "holds" are read off the interval: broken if even its lower bound reaches DEFENCE_BROKEN.
    lower = rate["lo"] if rate["lo"] is not None else rate["mean"]
    upper = rate["hi"] if rate["hi"] is not None else rate["mean"]
    if lower >= DEFENCE_BROKEN:
        out = (f"**The defence breaks on the {what}.** The {names[variant]} attacker fools the "
               f"detector + classifier system on {_pct_n(rate)} of its attempts at κ = {kappa} "
               f"({versus}), at a mean L2 of {_num(row['mean_l2'], '.3f')}.")
        if mean(reference) is not None:
            out += (f" Fooling the sanitized classifier alone took a mean L2 of {_num(reference, '.3f')} (oblivious "
                    "C&W, κ = 0): the gap between the two is what the detector buys.")
    elif upper < DEFENCE_BROKEN:
        out = (f"The defence holds on the {what} against these attackers: at most "
               f"{_pct_n(rate)} of attempts fool the system ({names[variant]}, κ = {kappa}; {versus}). "
               f"With {run.get('n_sources', DASH)} source image(s) per seed × 9 targets and {run.get('steps', DASH)} "
               f"Adam steps × {run.get('search_steps', DASH)} search steps this is a small search: a defence that survives "
               "a weak adaptive attack can still fall to a stronger one (Tramèr et al., 2020).")
    else:
        out = (f"On the {what} it is not settled whether the defence holds: the strongest attacker "
               f"({names[variant]}, κ = {kappa}) fools the system on {_pct_n(rate)} of attempts, an interval that "
               f"straddles {100 * DEFENCE_BROKEN:g}% ({versus}).")
    return [out]


def _per_detector(ran: list[Model]) -> list[str]:
    """One table per detector: the system under the oblivious and the adaptive attacker, and the extra L2."""
    out = ["### Every detector against the adaptive attacker",
           "Each detector guards the same sanitized classifier, at its own τ from the detect stage, and the adaptive "
           "C&W attacks that system (for feature squeezing through BPDA: the squeeze forward, the identity "
           "backward). System accuracy: mean [Wilson 95%] over all attempts. Extra L2: per (source, target, κ) "
           "where the adaptive attack fools the system and the oblivious C&W fooled the classifier, the adaptive "
           "L2 minus the oblivious L2, mean [bootstrap 95%] (n = such pairs): the distortion the detector makes the "
           "attacker pay."]
    for m in ran:
        for name, a in systems_of(m.threats).items():
            label = DETECTOR_LABELS.get(name, name)
            rows = []
            for k in sorted(set(a.get("adaptive") or {}) | set(a.get("oblivious") or {}), key=float):
                obl, adv = (a.get("oblivious") or {}).get(k) or {}, (a.get("adaptive") or {}).get(k) or {}
                rows.append([k, _pct(obl.get("system_acc")), _pct(adv.get("system_acc")),
                             _pct(adv.get("success_rate"), n=False), _num(adv.get("mean_l2"), ".3f", n=False),
                             _num(adv.get("extra_l2"), "+.3f")])
            out += [f"**{m.label}, {label}** (τ = {_num(a.get('threshold'), n=False)})",
                    _table(["κ", "system accuracy, oblivious %", "system accuracy, adaptive %",
                            "adaptive success %", "adaptive mean L2", "extra L2"], rows)]
            if name != _paper(m):
                out += _adaptive_verdict(m, a, label)
    return out


def _paper(m: Model) -> str:
    """The detector of model `m`'s systems that is the paper's: its detect file's divergence."""
    return (m.detect or {}).get("divergence", "kl")


def _threat_models(ran: list[Model]) -> list[str]:
    """The threat models of the results files (params threat_models): what each attacker attacks and knows."""
    named = {name: r["threat_model"] for m in ran for name, r in m.threats.items()}
    if not named:
        return []
    rows = [[f"`{name}`", f"`{t['attack']}`", t["target"], DETECTOR_LABELS.get(t["detector"], t["detector"] or DASH),
             t["knows"]] for name, t in named.items()]
    return [f"Threat models (params `threat_models`; one results file each, {ran[0].files}/{THREATS}/<name>.json; the "
            "attack is the params section whose settings it runs with):",
            _table(["threat model", "attack", "target", "detector", "the attacker knows"], rows)]


def _adaptive(inp: Inputs) -> str:
    out = ["## 12. Adaptive attacker (beyond the paper)",
           "The paper tests its KL detector only against an attacker who does not know it (§3.4) and leaves the "
           "adaptive case to future work (§4). Here the attacker knows both models, the divergence and τ "
           "(Carlini and Wagner, 2017, arXiv 1705.07263; Tramèr et al., 2020, arXiv 2002.08347). The adaptive "
           "C&W makes both models predict the target with margin ≥ κ while a hinge keeps the divergence below τ; "
           "the summed-logits C&W attacks Z_unsanitized + Z_sanitized at confidence κ. An attempt fools the system "
           "when the detector accepts it and the sanitized model outputs the target; the oblivious rows are the "
           "attack stage's plain C&W on the same source images, scored by the same rule. Each cell: system "
           "accuracy % / attack success % / mean L2 of the successes, over every attempt (n source images × 9 "
           "targets per κ)."]
    chosen = inp.agg["adaptive_models"]  # params adaptive_models: the rows attacked adaptively
    ran = [m for m in inp.sanitized if m.threats]
    missing = [f"{m.files}/{THREATS}" for m in inp.sanitized if not m.threats and m.name in chosen]
    skipped = [m.label for m in inp.sanitized if m.name not in chosen]
    if skipped:
        out.append(f"Rows attacked adaptively (params `adaptive_models`): "
                   f"{', '.join(m.label for m in inp.sanitized if m.name in chosen)}; not the "
                   f"{'row' if len(skipped) == 1 else 'rows'} {', '.join(skipped)}.")
    note = f"{ADAPTIVE_NOT_RUN} {', '.join(map(str, missing))} {'is' if len(missing) == 1 else 'are'} missing._"
    if not ran:
        return "\n\n".join(out + [note])

    out += _threat_models(ran)

    def cell(r):
        if r is None:
            return DASH
        return (f"{_pct(r['system_acc'], n=False)} / {_pct(r['success_rate'])} / "
                f"{_num(r['mean_l2'], '.3f', n=False)}")

    rows = []
    for m in ran:
        a = systems_of(m.threats)[_paper(m)]
        for k in sorted({k for v, _ in ADAPTIVE_VARIANTS for k in (a.get(v) or {})}, key=float):
            rows.append([m.label, k, _num(a.get("threshold"), n=False)]
                        + [cell((a.get(v) or {}).get(k)) for v, _ in ADAPTIVE_VARIANTS])
    out.append(_table(["model", "κ", "τ"] + [name for _, name in ADAPTIVE_VARIANTS], rows))
    for m in ran:
        out += _adaptive_verdict(m, systems_of(m.threats)[_paper(m)])
    out += _per_detector(ran)
    if missing:
        out.append(note)
    return "\n\n".join(out)
