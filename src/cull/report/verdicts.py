"""Section 0: one verdict per claim of the paper, as the verdicts stage decided it (metrics/verdicts.json)."""
from __future__ import annotations

from cull.report.inputs import Inputs
from cull.report.markdown import DASH, _table
from cull.verdicts import DETECT_BOUND

RULE = ("Each claim is split into parts (a model, an attack setting). A part is **REPRODUCED** when its whole "
        "95% interval lies on the side the paper claims, **CONTRADICTED** when it lies wholly on the other side, "
        "and **INCONCLUSIVE** when it straddles the bound or is undefined (one seed; a model not trained). A claim "
        "is CONTRADICTED if any part is, REPRODUCED if every part is, and INCONCLUSIVE otherwise. Rates use a "
        "Wilson interval over all examples of all seeds; differences, slopes, AUCs and thresholds a Student-t "
        f"interval over seeds; mean distortions a bootstrap over examples. The detection bound is "
        f"{100 * DETECT_BOUND:g}%.")


def _interval(part: dict) -> str:
    if part["mean"] is None:
        return part.get("note", DASH)
    lo = DASH if part["lo"] is None else f"{part['lo']:.4g}"
    hi = DASH if part["hi"] is None else f"{part['hi']:.4g}"
    return f"{part['mean']:.4g} [{lo}, {hi}] (n={part['n']})"


def _verdicts(inp: Inputs) -> str:
    out = ["## Verdicts: the paper's claims", RULE]
    rows = [[cid, v["claim"], v["source"], f"**{v['verdict']}**"] for cid, v in inp.verdicts.items()]
    out.append(_table(["claim", "the paper says", "where", "verdict"], rows))
    for cid, v in inp.verdicts.items():
        parts = "\n".join(f"- {p['what']}: {_interval(p)} → {p['verdict']}" + (f" ({p['note']})" if p.get("note")
                                                                              and p["mean"] is not None else "")
                          for p in v["numbers"])
        out.append(f"**{cid}. {v['claim']}** — {v['verdict']}. Rule: {v['rule']}.\n\n{parts}")
    return "\n\n".join(out)
