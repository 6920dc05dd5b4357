"""Sections 5 and 6: accuracy under IGSM and C&W distortion per model and threshold (Fig. 4-6).

Also writes ``threshold_<method>.csv``, the same numbers per threshold as a DVC plot.
"""
from __future__ import annotations

import math
from pathlib import Path

from cull.artifacts import save_csv
from cull.plots import figures
from cull.report.inputs import METHODS, Inputs, Model, _get
from cull.report.markdown import DASH, _figure, _missing, _not_run, _num, _pct, _table
from cull.report.paper import PAPER_CW0_L2, PAPER_IGSM5


def nines(threshold: float) -> float:
    """-log10(1 - threshold), an axis that spreads thresholds crowding towards 1: 0.9 -> 1, 0.9999 -> 4."""
    return round(-math.log10(1.0 - threshold), 9) + 0.0  # + 0.0 turns -0.0 into 0.0


def _attacked(inp: Inputs) -> list[Model]:
    ordered = [inp.unsanitized, *sorted(inp.sanitized, key=lambda m: (m.method, m.threshold))]
    return [m for m in ordered if m.attacks]


def _keys(models: list[Model], attack: str) -> list[str]:
    """Setting keys ("5", "0.1") found in any model's attack metrics, in numeric order."""
    keys = {k for m in models for k in (_get(m.attacks, attack) or {})}
    return sorted(keys, key=float)


def _threshold_series(inp: Inputs, attack: str, value) -> dict:
    """{panel: {series: {threshold: value}}} for Fig. 4-6; the unsanitized model is threshold 0 in every panel.

    `value` maps one setting's metrics ({"acc"}, {"success_rate", "mean_l2"} or None) to a number or None.
    """
    models = _attacked(inp)
    panels = {}
    for method in METHODS:
        members = [m for m in models if m.method in (None, method)]
        if not any(m.method == method for m in members):
            continue
        series = {}
        for k in _keys(models, attack):
            points = {m.threshold: value(_get(m.attacks, attack, k)) for m in members}
            label = f"{k} iterations" if attack == "igsm" else f"κ = {k}"
            series[label] = {t: v for t, v in points.items() if v is not None}
        panels[f"{method} sanitization"] = series
    return panels


def _threshold_csvs(inp: Inputs, out: Path) -> None:
    """report/threshold_<method>.csv: one row per attacked model (threshold 0 = unsanitized), for `dvc plots`."""
    models = _attacked(inp)
    igsm, cw = _keys(models, "igsm"), _keys(models, "cw")
    for method in METHODS:
        rows = []
        for m in (m for m in models if m.method in (None, method)):
            row = {"threshold": m.threshold, "nines": nines(m.threshold), "model": m.name,
                   "train_size": _get(m.train, "train_size"), "test_acc": _get(m.train, "test_acc")}
            row |= {f"igsm_{k}": _get(m.attacks, "igsm", k, "acc") for k in igsm}
            row |= {f"cw_l2_k{k.replace('.', 'p')}": _get(m.attacks, "cw", k, "mean_l2") for k in cw}
            rows.append(row)
        save_csv(out / f"threshold_{method}.csv", rows)


def _paper_points(series: dict, paper: dict, label: str) -> None:
    """Add the paper's points (model key -> value) to each panel of `series` as a reference line `label`."""
    for key, value in paper.items():
        for panel in series:
            if key is None or panel.startswith(key[0]):
                series[panel].setdefault(label, {})[0.0 if key is None else key[1]] = value


def _no_attacks(inp: Inputs) -> str:
    return _missing(inp.unsanitized.files["attacks"], inp.sanitized[0].files["attacks"])


def _igsm(inp: Inputs, figdir: Path) -> str:
    out = ["## 5. Robustness to IGSM (Fig. 4)"]
    models = _attacked(inp)
    if not models:
        return "\n\n".join(out + [_no_attacks(inp)])
    keys = _keys(models, "igsm")
    rows = [[m.label, _get(m.train, "train_size") or _get(m.filter, "size") or DASH,
             _pct(_get(m.train, "test_acc")), _pct(_get(m.attacks, "clean_acc"))]
            + [_pct(_get(m.attacks, "igsm", k, "acc")) for k in keys] for m in models]
    p = inp.params["igsm"]
    out.append(f"Accuracy (%) on IGSM examples, eps = {p.eps}, step {p.alpha}, "
               f"{_get(models[0].attacks, 'n_igsm')} test images per model.")
    header = ["model", "train size", "test acc", "clean acc (attacked images)"] + [f"IGSM {k}" for k in keys]
    out.append(_table(header, rows))
    series = _threshold_series(inp, "igsm", lambda r: None if r is None else 100 * r["acc"])
    if inp.dataset == "mnist":
        _paper_points(series, PAPER_IGSM5, "paper, 5 iterations")
    fig = figures.threshold_lines(series, ylabel="accuracy on IGSM examples (%)",
                                  title="IGSM accuracy vs sanitization threshold (paper Fig. 4)")
    out.append(_figure(figdir, "igsm_vs_threshold.png", fig, "Accuracy on IGSM examples vs sanitization "
                       "threshold; threshold 0 is the unsanitized model (paper Fig. 4)."))
    missing = [m.label for m in inp.sanitized if m.attacks is None]
    if missing:
        out.append(_not_run("attacks on " + ", ".join(missing)))
    return "\n\n".join(out)


def _cw(inp: Inputs, figdir: Path) -> str:
    number = "Fig. 5" if inp.dataset == "mnist" else "Fig. 6"
    out = [f"## 6. Carlini & Wagner distortion ({number})"]
    models = _attacked(inp)
    if not models:
        return "\n\n".join(out + [_no_attacks(inp)])
    keys = _keys(models, "cw")

    def cell(m, k):
        r = _get(m.attacks, "cw", k) or {}
        return f"{_num(r.get('mean_l2'), '.3f')} ({_pct(r.get('success_rate'))}%)"

    out.append(f"Mean L2 of successful targeted C&W examples (success rate), "
               f"{_get(models[0].attacks, 'n_cw')} source images × 9 targets per model.")
    rows = [[m.label] + [cell(m, k) for k in keys] for m in models]
    out.append(_table(["model"] + [f"κ = {k}" for k in keys], rows))
    series = _threshold_series(inp, "cw", lambda r: _get(r, "mean_l2"))
    if inp.dataset == "mnist":
        _paper_points(series, PAPER_CW0_L2, "paper, κ = 0")
    fig = figures.threshold_lines(series, ylabel="mean L2 distortion",
                                  title=f"C&W distortion vs sanitization threshold (paper {number})")
    out.append(_figure(figdir, "cw_l2_vs_threshold.png", fig,
                       f"Mean L2 of C&W examples vs sanitization threshold, one line per κ (paper {number})."))
    return "\n\n".join(out)
